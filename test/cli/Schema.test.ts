/**
 * The CLI's `schema` commands as users run them (a subprocess), with the sources of an application module
 * (`fixtures/schemas.ts`): `schema lock write` writes what `SchemaLock.format` would, `schema lock check`
 * exits 1 on a stored version edited in place (naming type, version and field) and, with `--strict`, on a
 * lock not up to date; `schema verify` reports an undecodable stored event with its stream id and version,
 * with progress on stderr, on SQLite, PostgreSQL and MariaDB.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Event from "../../src/Event.js"
import * as SchemaLock from "../../src/SchemaLock.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as Sqlite from "../../src/sqlite/Sqlite.js"
import { mysqlUrl, pgUrl } from "../support/config.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { mysqlWithPrefix, pgWithSchema } from "../support/sql.js"
import * as Fixtures from "./fixtures/schemas.js"
import { cli, type Result } from "../support/cliProcess.js"

const module = path.join("test", "cli", "fixtures", "schemas.ts")

const ok = (result: Result): unknown => {
  assert.strictEqual(result.code, 0, `exit ${result.code}: ${result.stderr}`)
  return JSON.parse(result.stdout)
}

/** A failure: exit code 1, the last line of stderr the error. */
const failed = (result: Result, pattern: RegExp) => {
  assert.strictEqual(result.code, 1, `expected exit code 1, got ${result.code}; stderr: ${result.stderr}`)
  assert.match(result.stderr.trim().split("\n").pop()!, pattern)
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ees-schema-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe("CLI schema lock", () => {
  it.live(
    "write, check, a field edited in place, a new version, --strict and --force",
    () =>
      Effect.gen(function* () {
        const lock = path.join(dir, "schema-lock.json")
        const args = (command: string, exported: string, ...more: Array<string>) => [
          "schema",
          "lock",
          command,
          "--module",
          module,
          "--export",
          exported,
          "--lock",
          lock,
          ...more
        ]

        const written = ok(yield* cli(args("write", "v1", "--json"))) as { readonly added: ReadonlyArray<string> }
        assert.deepStrictEqual(written.added, ["event Opened v1", "event Deposited v1"])
        const expected = SchemaLock.format(yield* SchemaLock.fromSources(Fixtures.v1))
        assert.strictEqual(fs.readFileSync(lock, "utf8"), expected)

        const checked = yield* cli(args("check", "v1", "--strict"))
        assert.strictEqual(checked.code, 0, checked.stderr)
        assert.match(checked.stdout, /the schemas match/)

        // a stored version edited in place: exit 1, the change named in the output
        const broken = yield* cli(args("check", "edited", "--json"))
        failed(broken, /^error: 1 breaking change\(s\) against /)
        const report = JSON.parse(broken.stdout) as {
          readonly ok: boolean
          readonly breaking: ReadonlyArray<SchemaLock.Change>
        }
        assert.isFalse(report.ok)
        assert.deepStrictEqual(
          report.breaking.map((c) => [c.name, c.version, c.field]),
          [["Deposited", 1, "amount"]]
        )
        assert.match(report.breaking[0]!.message, /field "amount" changed from number to string/)
        const text = yield* cli(args("check", "edited"))
        assert.match(text.stdout, /^breaking: event Deposited v1: field "amount" changed from number to string/m)

        // writing over it is refused (the file unchanged), unless forced
        failed(yield* cli(args("write", "edited")), /breaking change\(s\): the lock is not written \(--force/)
        assert.strictEqual(fs.readFileSync(lock, "utf8"), expected)

        // a new version with an upcaster passes; --strict wants it written first
        assert.strictEqual((yield* cli(args("check", "v2"))).code, 0)
        failed(yield* cli(args("check", "v2", "--strict")), /is not up to date: write it/)
        ok(yield* cli(args("write", "v2", "--json")))
        const checkedV2 = yield* cli(args("check", "v2", "--strict"))
        assert.strictEqual(checkedV2.code, 0, checkedV2.stderr)
        const both = yield* SchemaLock.parse(fs.readFileSync(lock, "utf8"))
        assert.deepStrictEqual(Object.keys(both.events.Deposited!), ["1", "2"])

        const forcedLock = path.join(dir, "forced.json")
        fs.copyFileSync(lock, forcedLock)
        const force = (exported: string, ...more: Array<string>) =>
          cli(["schema", "lock", "write", "--module", module, "--export", exported, "--lock", forcedLock, ...more])
        assert.strictEqual((yield* force("edited", "--force")).code, 0)
        assert.strictEqual((yield* cli(args("check", "edited").map((a) => (a === lock ? forcedLock : a)))).code, 0)
      }),
    120_000
  )

  it.live("a module without the export, a missing module, a missing lock: one line each, exit 1", () =>
    Effect.gen(function* () {
      const lock = ["--lock", path.join(dir, "none.json")]
      const check = (...more: Array<string>) => cli(["schema", "lock", "check", ...lock, ...more])
      const noExport = yield* check("--module", module, "--export", "notSources")
      failed(noExport, /has no export notSources made by SchemaLock.sources \(it exports: .*v1/)
      assert.strictEqual(noExport.stderr.trim().split("\n").length, 1)
      failed(
        yield* check("--module", "test/cli/fixtures/missing.ts"),
        /^error: cannot load test\/cli\/fixtures\/missing/
      )
      failed(yield* check("--module", module, "--export", "v1"), /^error: no lock at .*none.json: write one/)
    })
  )
})

// ---------------------------------------------------------------------------------------------------
// schema verify, on each backend
// ---------------------------------------------------------------------------------------------------

const prefix = isolatedPrefix(import.meta.url)
const sqliteFile = path.join(dir, "events.db")

const backends: ReadonlyArray<{
  readonly name: string
  readonly connect: ReadonlyArray<string>
  readonly tables: { readonly schema?: string; readonly tablePrefix?: string }
  readonly client: Layer.Layer<SqlClient.SqlClient>
}> = [
  {
    name: "SQLite",
    connect: ["--url", sqliteFile],
    tables: {},
    client: Layer.orDie(Sqlite.layer({ filename: sqliteFile }))
  },
  {
    name: "PostgreSQL",
    connect: ["--url", pgUrl, "--schema", prefix],
    tables: { schema: prefix },
    client: pgWithSchema(prefix)
  },
  {
    name: "MariaDB",
    connect: ["--url", mysqlUrl, "--table-prefix", `${prefix}_`],
    tables: { tablePrefix: `${prefix}_` },
    client: mysqlWithPrefix(`${prefix}_`)
  }
]

for (const backend of backends) {
  describe(`CLI schema verify on ${backend.name}`, () => {
    it.live(
      "reports the stored event the codecs cannot decode, with its stream id and version; exit 1",
      () =>
        Effect.gen(function* () {
          const store = yield* SqlEventStore.make({ ...backend.tables, commandPruning: false })
          const category = yield* uniqueCategory
          const events = (fields: ReadonlyArray<Event.EventFields>) => Event.makeAll(fields)
          yield* store.append(
            `${category}-1`,
            yield* events([
              { type: "Opened", data: { owner: "ada" } },
              { type: "Deposited", data: { amount: 10 } }
            ])
          )
          // what an older codec cannot read: a version it does not know, data it does not accept
          yield* store.append(
            `${category}-2`,
            yield* events([
              { type: "Opened", data: { owner: "bob" } },
              { type: "Deposited", schemaVersion: 2, data: { cents: 500 } },
              { type: "Deposited", data: { amount: "ten" } }
            ])
          )
          // on PostgreSQL, transactions open in the cluster (other tests') may hold them back for a moment
          yield* store
            .heldBack()
            .pipe(
              Effect.repeat({ until: Option.isNone, schedule: Schedule.spaced("100 millis") }),
              Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("events still held back") })
            )
          const verify = (exported: string, ...more: Array<string>) =>
            cli(["schema", "verify", ...backend.connect, "--module", module, "--export", exported, ...more])

          const result = yield* verify("v1", "--json")
          failed(result, /^error: 2 stored event\(s\) do not decode, of Deposited v1, Deposited v2$/)
          assert.match(result.stderr, /events read \(~\d+\/\d+ positions/)
          const report = JSON.parse(result.stdout) as {
            readonly complete: boolean
            readonly last: string | null
            readonly heldBack: unknown
            readonly read: number
            readonly failed: number
            readonly types: ReadonlyArray<{
              readonly type: string
              readonly version: number
              readonly failed: number
              readonly examples: ReadonlyArray<{
                readonly streamId: string
                readonly version: number
                readonly reason: string
              }>
            }>
          }
          assert.isTrue(report.complete)
          assert.deepStrictEqual([report.read, report.failed], [5, 2])
          assert.match(report.last!, /^\d+:\d+$/)
          assert.isNull(report.heldBack)
          assert.deepStrictEqual(
            report.types
              .filter((t) => t.failed > 0)
              .map((t) => [t.type, t.version, t.examples.map((e) => [e.streamId, e.version, e.reason])]),
            [
              ["Deposited", 1, [[`${category}-2`, 3, "InvalidData"]]],
              ["Deposited", 2, [[`${category}-2`, 2, "UnknownVersion"]]]
            ]
          )
          // the text report: a table with the example
          const text = yield* verify("v1")
          assert.match(
            text.stdout,
            new RegExp(`^Deposited\\s+2\\s+1\\s+1\\s+1\\s+${category}-2@2 \\(codec bank\\): UnknownVersion`, "m")
          )

          // the release with v2 and its upcaster reads v2; the bad v1 data still fails, in the upcaster
          const withV2 = JSON.parse((yield* verify("v2", "--json")).stdout) as typeof report
          assert.deepStrictEqual(
            withV2.types.filter((t) => t.failed > 0).map((t) => [t.type, t.version, t.failed]),
            [["Deposited", 1, 1]]
          )
          // a sample of one per (type, version) decodes the good v1 deposit only: nothing fails
          const sampled = yield* verify("v2", "--sample", "1", "--json")
          assert.strictEqual(sampled.code, 0, sampled.stderr)
        }).pipe(Effect.scoped, Effect.provide(backend.client)),
      120_000
    )
  })
}
