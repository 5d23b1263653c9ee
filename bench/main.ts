/**
 * `npm run bench [-- --quick] [-- --only W1,W2]`: runs the workloads of BENCHMARKS.md against every
 * store next to the raw baselines, prints a table and writes bench/results/latest.json.
 */
import { parseArgs } from "node:util"
import pg from "pg"
import { type Options, printTable, type Result, writeReport } from "./harness.js"
import { closePool, openPool } from "./raw.js"
import { B0 } from "./workloads/driver.js"
import { targets as allTargets } from "./targets.js"
import { W1, W2, W3 } from "./workloads/append.js"
import { C1, C2, W4 } from "./workloads/aggregate.js"
import { U1 } from "./workloads/codec.js"
import { U1Personal, W3Personal } from "./workloads/personal.js"
import { E1 } from "./workloads/endToEnd.js"
import { O1 } from "./workloads/outbox.js"
import { P1, P2 } from "./workloads/projection.js"
import { R2 } from "./workloads/read.js"

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    repetitions: { type: "string", default: "3" }
  }
})

const options: Options = {
  scale: values.quick ? 0.1 : 1,
  repetitions: Number(values.repetitions),
  pgUrl: process.env.PG_URL ?? "postgres://root@127.0.0.1:5432/test"
}

const targets = allTargets(options.pgUrl)

const workloads: ReadonlyArray<{
  readonly id: string
  readonly run: (pool: pg.Pool) => Promise<ReadonlyArray<Result>>
}> = [
  { id: "B0", run: (pool) => B0(options, pool) },
  { id: "W1", run: (pool) => W1(options, pool, targets) },
  { id: "W2", run: (pool) => W2(options, pool, targets) },
  {
    id: "W3",
    run: async (pool) => [...(await W3(options, pool, targets)), ...(await W3Personal(options, targets))]
  },
  { id: "W4", run: () => W4(options, targets) },
  { id: "C1", run: (pool) => C1(options, pool, targets) },
  { id: "C2", run: (pool) => C2(options, pool, targets) },
  { id: "R2", run: (pool) => R2(options, pool, targets) },
  { id: "P1", run: (pool) => P1(options, pool) },
  { id: "P2", run: () => P2(options) },
  { id: "O1", run: () => O1(options) },
  { id: "E1", run: (pool) => E1(options, pool) },
  { id: "U1", run: async () => [...(await U1(options)), ...(await U1Personal(options))] }
]

const only = values.only?.split(",").map((s) => s.trim().toUpperCase())
const unknown = only?.filter((id) => !workloads.some((w) => w.id === id)) ?? []
if (unknown.length > 0) {
  process.stderr.write(`unknown workload(s): ${unknown.join(", ")}; known: ${workloads.map((w) => w.id).join(", ")}\n`)
  process.exit(2)
}

const pool = await openPool(options.pgUrl, 16)
const results: Array<Result> = []
try {
  for (const workload of workloads.filter((w) => only === undefined || only.includes(w.id))) {
    process.stdout.write(`running ${workload.id}...\n`)
    results.push(...(await workload.run(pool)))
  }
  const postgres = (await pool.query<{ server_version: string }>("show server_version")).rows[0]!.server_version
  printTable(results)
  const path = new URL("./results/latest.json", import.meta.url).pathname
  writeReport(
    path,
    { postgres, date: new Date().toISOString(), quick: values.quick, repetitions: options.repetitions },
    results
  )
  process.stdout.write(`wrote ${path}\n`)
} finally {
  await closePool(pool)
}

const broken = results.filter((r) => (r.gaps ?? 0) > 0 || (r.duplicates ?? 0) > 0)
if (broken.length > 0) {
  process.stderr.write(`FAIL: gaps or duplicates in ${broken.map((r) => `${r.id}/${r.store}`).join(", ")}\n`)
  process.exit(1)
}
