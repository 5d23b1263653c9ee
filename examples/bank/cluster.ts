/**
 * `npm run cluster`: the bank as three processes on PostgreSQL and a three-node NATS JetStream cluster,
 * started (and stopped) by this one script:
 *
 * - three `nats-server` nodes (`NATS_SERVER`, default `nats-server` on the PATH) clustered on free
 *   loopback ports, with their data in a temporary directory; the bank's streams have three replicas;
 * - `api` (HTTP and the command bus, on `PORT`, default 3000), `projections` (the read models and the
 *   transfer saga) and `relay` (the outbox relay and the alerts consumer): `main.ts` with `BANK_ROLES`,
 *   all on `DATABASE_URL` (default the local server's `test` database) and the three NATS seeds.
 *
 * The API process starts first (it creates the tables), the two others once it answers `/health`. Their
 * output is prefixed with their role. SIGINT (Ctrl-C) or SIGTERM stops the three processes (each drains
 * and exits 0), then the NATS nodes, and removes the directory; the script exits 0 when every process
 * did. If a process ends on its own, the script stops the rest and exits 1.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"

const natsServer = process.env.NATS_SERVER ?? "nats-server"
const databaseUrl = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const port = process.env.PORT ?? "3000"
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bank-cluster-"))
const children = new Map<string, ChildProcess>()
let stopping = false

const log = (line: string) => process.stdout.write(`[cluster] ${line}\n`)

/** A port that was free a moment ago on 127.0.0.1. */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer().once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Retries `attempt` every 200 ms until it succeeds, for up to `seconds`. */
const eventually = async <A>(what: string, seconds: number, attempt: () => Promise<A>): Promise<A> => {
  const deadline = performance.now() + seconds * 1000
  for (;;) {
    try {
      return await attempt()
    } catch (error) {
      if (stopping || performance.now() > deadline) throw new Error(`${what}: ${String(error)}`, { cause: error })
      await sleep(200)
    }
  }
}

/** Starts a process whose output lines are prefixed with `name`; the script stops if it ends on its own. */
const start = (name: string, command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) => {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream }).on("line", (line) => process.stdout.write(`[${name}] ${line}\n`))
  }
  children.set(name, child)
  child.once("exit", (code, signal) => {
    if (stopping) return
    log(`${name} ended on its own (${signal ?? `exit ${code}`}): stopping the rest`)
    void stop(1)
  })
  return child
}

/** Ends `child` with SIGTERM (SIGKILL after 30 s); its exit code, or `null` if a signal ended it. */
const terminate = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode)
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.once("exit", (code) => {
      clearTimeout(killer)
      resolve(code)
    })
    child.kill("SIGTERM")
  })

const applications = ["api", "projections", "relay"]

/** Stops the applications, then the NATS nodes; removes the directory; exits with `code` or 1. */
const stop = async (code: number) => {
  if (stopping) return
  stopping = true
  let failed = code !== 0
  await Promise.all(
    applications.flatMap((name) => {
      const child = children.get(name)
      return child === undefined
        ? []
        : [
            terminate(child).then((exit) => {
              log(`${name} exited ${exit ?? `on ${child.signalCode}`}`)
              if (exit !== 0) failed = true
            })
          ]
    })
  )
  await Promise.all([...children].filter(([name]) => !applications.includes(name)).map(([, c]) => terminate(c)))
  fs.rmSync(dir, { recursive: true, force: true })
  log(failed ? "stopped, with failures" : "stopped")
  process.exit(failed ? 1 : 0)
}

const main = async () => {
  process.once("SIGINT", () => void stop(0))
  process.once("SIGTERM", () => void stop(0))

  const nodes = await Promise.all(
    [1, 2, 3].map(async (n) => ({ name: `nats-${n}`, client: await freePort(), route: await freePort() }))
  )
  for (const node of nodes) {
    const routes = nodes.filter((other) => other !== node).map((other) => `nats://127.0.0.1:${other.route}`)
    start(node.name, natsServer, [
      ...["-a", "127.0.0.1", "-p", String(node.client), "-n", node.name, "-js", "-sd", path.join(dir, node.name)],
      ...["--cluster_name", "bank", "--cluster", `nats://127.0.0.1:${node.route}`, "--routes", routes.join(",")]
    ])
  }
  const seeds = nodes.map((node) => `nats://127.0.0.1:${node.client}`).join(",")
  // JetStream answers once the cluster has elected its meta leader
  await eventually("the NATS cluster's JetStream", 60, async () => {
    const connection = await connect({ servers: seeds.split(","), timeout: 2_000 })
    try {
      await (await jetstreamManager(connection)).getAccountInfo()
    } finally {
      await connection.close()
    }
  })
  log(`NATS cluster up: ${seeds} (data in ${dir})`)

  const bank = (roles: string, env: NodeJS.ProcessEnv = {}) =>
    start(roles, process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "main.ts")], {
      DATABASE_URL: databaseUrl,
      NATS_URL: seeds,
      NATS_REPLICAS: "3",
      BANK_ROLES: roles,
      ...env
    })
  bank("api", { PORT: port })
  await eventually("the API's /health", 120, async () => {
    const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2_000) })
    if (!response.ok) throw new Error(`status ${response.status}`)
  })
  bank("projections")
  bank("relay")
  log(`the bank runs as api, projections and relay: http://localhost:${port}/`)
}

main().catch((error: unknown) => {
  log(`failed to start: ${error instanceof Error ? error.message : String(error)}`)
  void stop(1)
})
