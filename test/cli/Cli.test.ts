/**
 * The CLI as users run it: a subprocess (`node --import tsx src/cli/bin.ts`) against SQLite, PostgreSQL and
 * MariaDB. `migrate sql` output applied with the database's own tool gives tables the stores accept
 * without migrating; `events tail` prints events appended after it started; housekeeping commands do what
 * they say; bad options and unreachable databases are one line on stderr and exit code 1.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as NodeContext from "@effect/platform-node/NodeContext"
import type * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Fiber from "effect/Fiber"
import * as Effect from "effect/Effect"
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Queue from "effect/Queue"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Cli from "../../src/cli/Cli.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Projection from "../../src/Projection.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as SqlInbox from "../../src/sql/SqlInbox.js"
import * as SqlKeyStore from "../../src/sql/SqlKeyStore.js"
import * as SqlSagaStore from "../../src/sql/SqlSagaStore.js"
import * as SqlSnapshotStore from "../../src/sql/SqlSnapshotStore.js"
import * as Sqlite from "../../src/sqlite/Sqlite.js"
import { balancesProjection, createTables, readModel } from "../support/balances.js"
import { mysqlUrl, pgUrl } from "../support/config.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { mysqlWithPrefix, pgWithSchema } from "../support/sql.js"
import { bin, cli, type Result, root } from "../support/cliProcess.js"

/** Runs the CLI to its end (killed after 60 s). */
/** What `--help` of `command` prints, from `Cli.run` in this process. */
const helpOf = (command: ReadonlyArray<string>): Effect.Effect<string> =>
  Effect.gen(function* () {
    const printed: Array<string> = []
    const print = (...args: ReadonlyArray<unknown>) => {
      printed.push(args.map(String).join(" "))
    }
    const console = yield* Effect.console
    const capturing: Console.Console = {
      ...console,
      log: (...args) => Effect.sync(() => print(...args)),
      unsafe: { ...console.unsafe, log: print }
    }
    yield* Cli.run(["node", "effect-eventsourcing", ...command, "--help"], "test").pipe(
      Effect.withConsole(capturing),
      Effect.provide(NodeContext.layer),
      Effect.orDie
    )
    return printed.join("\n")
  })

/** The key stores' master key (one per database: another one is refused). */
const masterKey = Redacted.make(Buffer.alloc(32, 7).toString("base64"))

/** Runs a command of a shell tool with `input` on its stdin. */
const tool = (command: string, args: ReadonlyArray<string>, input: string): Effect.Effect<Result> =>
  Effect.async<Result>((resume) => {
    const child = spawn(command, args)
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    child.stdin.end(input)
  })

/** Starts the CLI in the scope (killed when it closes); its stdout lines and stderr text, as they come. */
const started = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const lines = yield* Queue.unbounded<string>()
    const stderr = { text: "" }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(process.execPath, ["--import", "tsx", bin, ...args], { cwd: root })),
      (child) => Effect.sync(() => child.kill("SIGKILL"))
    )
    let pending = ""
    child.stdout.on("data", (chunk: Buffer) => {
      pending += chunk.toString()
      const complete = pending.split("\n")
      pending = complete.pop()!
      for (const line of complete) Queue.unsafeOffer(lines, line)
    })
    child.stderr.on("data", (chunk: Buffer) => (stderr.text += chunk.toString()))
    return { lines, stderr }
  })

/** Polls `check` until it holds (at most 60 s, then fails naming `what`). */
const eventually = (what: string, check: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1200; i++) {
      if (check()) return
      yield* Effect.sleep("50 millis")
    }
    return yield* Effect.dieMessage(`timed out waiting for ${what}`)
  })

/** Polls `effect` until its value passes `done` (at most 60 s, then fails naming `what`). */
const waitFor = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.repeat({ until: done, schedule: Schedule.spaced("50 millis") }),
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

const parse = (result: Result): unknown => {
  assert.strictEqual(result.code, 0, `exit ${result.code}: ${result.stderr}`)
  return JSON.parse(result.stdout)
}

/** Asserts a failure reported as one line on stderr, with exit code 1. */
const oneLineError = (result: Result, pattern: RegExp) => {
  assert.strictEqual(result.code, 1, `expected exit code 1, got ${result.code}; stdout: ${result.stdout}`)
  const lines = result.stderr.trim().split("\n")
  assert.strictEqual(lines.length, 1, `expected one line on stderr, got:\n${result.stderr}`)
  assert.match(lines[0]!, pattern)
}

interface Backend {
  readonly name: string
  readonly dialect: "pg" | "sqlite" | "mysql"
  /** The connection options of the CLI. */
  readonly connect: ReadonlyArray<string>
  /** Table options of the stores, matching `connect`. */
  readonly tables: { readonly schema?: string; readonly tablePrefix?: string }
  /** Applies an SQL script with the database's own command-line tool. */
  readonly apply: (script: string) => Effect.Effect<Result>
  /** A client of the same database, cleaned up with the scope. */
  readonly client: Layer.Layer<SqlClient.SqlClient>
  /** Where a test's read-model tables go (a schema or a table prefix of the backend's). */
  readonly readModels: string
}

const prefix = isolatedPrefix(import.meta.url)
const sqliteDir = fs.mkdtempSync(path.join(os.tmpdir(), "ees-cli-"))
const sqliteFile = path.join(sqliteDir, "events.db")
const pg = new URL(pgUrl)
afterAll(() => fs.rmSync(sqliteDir, { recursive: true, force: true }))

const backends: ReadonlyArray<Backend> = [
  {
    name: "SQLite",
    dialect: "sqlite",
    connect: ["--url", sqliteFile],
    tables: {},
    apply: (script) => tool("sqlite3", ["-bail", sqliteFile], script),
    client: Layer.orDie(Sqlite.layer({ filename: sqliteFile })),
    readModels: "rm"
  },
  {
    name: "PostgreSQL",
    dialect: "pg",
    connect: ["--url", pgUrl, "--schema", prefix],
    tables: { schema: prefix },
    apply: (script) =>
      tool(
        "psql",
        [
          "-q",
          "-v",
          "ON_ERROR_STOP=1",
          "-h",
          pg.hostname,
          "-p",
          pg.port || "5432",
          "-U",
          pg.username,
          pg.pathname.slice(1)
        ],
        script
      ),
    client: pgWithSchema(prefix),
    readModels: `${prefix}.rm`
  },
  {
    name: "MariaDB",
    dialect: "mysql",
    connect: ["--url", mysqlUrl, "--table-prefix", `${prefix}_`],
    tables: { tablePrefix: `${prefix}_` },
    apply: (script) => {
      const url = new URL(mysqlUrl)
      return tool(
        "mariadb",
        ["-h", url.hostname, "-P", url.port || "3306", "-u", url.username, url.pathname.slice(1)],
        script
      )
    },
    client: mysqlWithPrefix(`${prefix}_`),
    readModels: `${prefix}_rm`
  }
]

const tick = (n: number) => Event.make({ type: "Ticked", data: { n } })

for (const backend of backends) {
  describe(`CLI on ${backend.name}`, () => {
    it.live(
      "migrate sql, applied with the database's tool, gives tables every store accepts without migrating",
      () =>
        Effect.gen(function* () {
          const printed = yield* cli(["migrate", "sql", "--dialect", backend.dialect, ...backend.connect.slice(2)])
          assert.strictEqual(printed.code, 0, printed.stderr)
          const applied = yield* backend.apply(printed.stdout)
          assert.strictEqual(applied.code, 0, `the script did not apply: ${applied.stderr}`)

          // every store starts on them without migrating, and works
          const noMigrations = { ...backend.tables, migrate: false } as const
          const store = yield* SqlEventStore.make({ ...noMigrations, commandPruning: false })
          const streamId = `${yield* uniqueCategory}-1`
          yield* store.append(streamId, [yield* tick(1), yield* tick(2)], { commandId: `${streamId}-c` })
          assert.strictEqual(yield* store.streamVersion(streamId), 2)
          const snapshots = yield* SqlSnapshotStore.make(noMigrations)
          yield* snapshots.save({ streamId, version: 2, stateVersion: 1, state: {}, takenAt: DateTime.unsafeMake(0) })
          const checkpoints = yield* SqlCheckpointStore.make(noMigrations)
          yield* checkpoints.register({ name: "p", version: 1 }, 2)
          yield* SqlSagaStore.make(noMigrations)
          const inbox = yield* SqlInbox.make(noMigrations)
          assert.isTrue(Option.isSome(yield* inbox.once("c", "m", Effect.void)))
          const keys = yield* SqlKeyStore.make({
            ...noMigrations,
            masterKey
          })
          yield* keys.dataKey(streamId)

          // the stores' own migrations find everything applied: nothing pending, nothing run again
          const status = parse(yield* cli(["migrate", "status", ...backend.connect, "--json"]))
          assert.deepStrictEqual(
            (status as ReadonlyArray<{ readonly service: string; readonly pending: ReadonlyArray<unknown> }>).map(
              (s) => [s.service, s.pending.length]
            ),
            [
              ["events", 0],
              ["snapshots", 0],
              ["projections", 0],
              ["sagas", 0],
              ["inbox", 0],
              ["keys", 0]
            ]
          )
          yield* SqlEventStore.make({ ...backend.tables, commandPruning: false })
          const up = parse(yield* cli(["migrate", "up", ...backend.connect, "--json"]))
          assert.deepStrictEqual(
            (up as ReadonlyArray<{ readonly migrations: ReadonlyArray<unknown> }>).map((s) => s.migrations.length),
            [0, 0, 0, 0, 0, 0]
          )
        }).pipe(Effect.scoped, Effect.provide(backend.client)),
      120_000
    )

    it.live(
      "events tail prints the events appended after it started; events stream prints a stream",
      () =>
        Effect.gen(function* () {
          const store = yield* SqlEventStore.make({ ...backend.tables, commandPruning: false })
          const category = yield* uniqueCategory
          yield* store.append(`${category}-old`, [yield* tick(0)])
          const tail = yield* started([
            "events",
            "tail",
            ...backend.connect,
            "--category",
            category,
            "--json",
            "--poll",
            "50"
          ])
          yield* eventually("tail to start", () => tail.stderr.text.includes("following the log"))
          yield* store.append(`${category}-1`, [yield* tick(1), yield* tick(2)])
          yield* store.append(`${category}-2`, [yield* tick(3)])
          const seen = []
          for (let i = 0; i < 3; i++) {
            const line = yield* Queue.take(tail.lines).pipe(
              Effect.timeoutFail({
                duration: "60 seconds",
                onTimeout: () => new Error(`no line ${i}: ${tail.stderr.text}`)
              })
            )
            seen.push(
              JSON.parse(line) as { readonly streamId: string; readonly version: number; readonly data: unknown }
            )
          }
          assert.deepStrictEqual(
            seen.map((e) => [e.streamId, e.version, e.data]),
            [
              [`${category}-1`, 1, { n: 1 }],
              [`${category}-1`, 2, { n: 2 }],
              [`${category}-2`, 1, { n: 3 }]
            ]
          )
          const stream = yield* cli(["events", "stream", ...backend.connect, `${category}-1`])
          assert.strictEqual(stream.code, 0, stream.stderr)
          const lines = stream.stdout.trim().split("\n")
          assert.strictEqual(lines.length, 2)
          assert.match(lines[0]!, new RegExp(`^\\d+:\\d+ ${category}-1@1 Ticked \\S+ \\{"n":1\\}$`))
        }).pipe(Effect.scoped, Effect.provide(backend.client)),
      120_000
    )

    it.live(
      "streams archive and retention apply",
      () =>
        Effect.gen(function* () {
          const store = yield* SqlEventStore.make({ ...backend.tables, commandPruning: false })
          const category = yield* uniqueCategory
          const [id, other] = [`${category}-1`, `${category}-2`]
          yield* store.append(id, [yield* tick(1), yield* tick(2), yield* tick(3)])
          yield* store.append(other, [yield* tick(4), yield* tick(5)])
          const versions = (streamId: string, options?: EventStore.ReadStreamOptions) =>
            Effect.map(Stream.runCollect(store.readStream(streamId, options)), (events) =>
              Chunk.toArray(events).map((e) => e.version)
            )
          const run = (...args: ReadonlyArray<string>) =>
            Effect.map(cli([...args, ...backend.connect, "--json"]), parse)
          assert.deepStrictEqual(yield* run("streams", "archive", id, "--before", "3"), { streamId: id, archived: 2 })
          assert.deepStrictEqual(yield* versions(id), [3])
          assert.deepStrictEqual(yield* versions(id, { includeArchived: true }), [1, 2, 3])
          assert.deepStrictEqual(yield* run("streams", "archive", id), { streamId: id, archived: 1 })
          assert.deepStrictEqual(yield* versions(id), [])
          assert.deepStrictEqual(yield* run("retention", "apply", "--category", category, "--max-count", "1"), {
            category,
            streams: 1,
            events: 1
          })
          assert.deepStrictEqual(yield* versions(other), [2])
          assert.deepStrictEqual(yield* versions(id, { includeArchived: true }), [1, 2, 3], "archived events stay")
          const aged = yield* cli([
            "retention",
            "apply",
            "--category",
            category,
            "--max-age",
            "1 millis",
            ...backend.connect
          ])
          assert.strictEqual(aged.code, 0, aged.stderr)
          assert.strictEqual(aged.stdout.trim(), `${category}: 1 events removed from 1 streams`)
          assert.deepStrictEqual(yield* versions(other), [])
          oneLineError(
            yield* cli(["retention", "apply", "--category", category, ...backend.connect]),
            /say what to keep/
          )
          oneLineError(
            yield* cli(["retention", "apply", "--category", category, "--max-age", "soon", ...backend.connect]),
            /--max-age takes a duration/
          )
          oneLineError(yield* cli(["streams", "archive", `${category}-3`, ...backend.connect]), /Stream not found/)
        }).pipe(Effect.scoped, Effect.provide(backend.client)),
      120_000
    )

    it.live(
      "streams delete, undelete, truncate and hard-delete",
      () =>
        Effect.gen(function* () {
          const store = yield* SqlEventStore.make({ ...backend.tables, commandPruning: false })
          const id = `${yield* uniqueCategory}-1`
          yield* store.append(id, [yield* tick(1), yield* tick(2), yield* tick(3)])
          const run = (...args: ReadonlyArray<string>) =>
            Effect.map(cli(["streams", ...args, ...backend.connect, "--json"]), parse)
          assert.deepStrictEqual(yield* run("delete", id), { streamId: id, result: null })
          assert.strictEqual((yield* Effect.flip(Stream.runDrain(store.readStream(id))))._tag, "StreamDeleted")
          const refused = yield* cli(["streams", "truncate", id, "--before", "2", ...backend.connect])
          oneLineError(refused, /Stream deleted/)
          yield* run("undelete", id)
          assert.deepStrictEqual(yield* run("truncate", id, "--before", "3"), { streamId: id, removed: 2 })
          assert.deepStrictEqual(
            Chunk.toArray(yield* Stream.runCollect(store.readStream(id))).map((e) => e.version),
            [3]
          )
          const snapshots = yield* SqlSnapshotStore.make(backend.tables)
          yield* snapshots.save({
            streamId: id,
            version: 3,
            stateVersion: 1,
            state: {},
            takenAt: DateTime.unsafeMake(0)
          })
          assert.deepStrictEqual(yield* run("hard-delete", id), { streamId: id, snapshots: 1 })
          assert.isTrue(Option.isNone(yield* snapshots.load(id)))
          const error = yield* Effect.flip(Stream.runDrain(store.readStream(id)))
          assert.deepStrictEqual([error._tag, error._tag === "StreamDeleted" && error.hard], ["StreamDeleted", true])
        }).pipe(Effect.scoped, Effect.provide(backend.client)),
      120_000
    )

    it.live(
      "snapshots stats and prune, commands prune",
      () =>
        Effect.gen(function* () {
          const snapshots = yield* SqlSnapshotStore.make(backend.tables)
          const category = yield* uniqueCategory
          for (const stream of ["1", "2"]) {
            for (const version of [1, 2, 3]) {
              yield* snapshots.save({
                streamId: `${category}-${stream}`,
                version,
                stateVersion: 1,
                state: { version },
                takenAt: DateTime.unsafeMake(0)
              })
            }
          }
          const stats = parse(yield* cli(["snapshots", "stats", ...backend.connect, "--json"])) as {
            readonly categories: ReadonlyArray<{
              readonly category: string
              readonly count: number
              readonly streams: number
              readonly bytes: number
            }>
          }
          // {"version":1} is 13 bytes
          assert.deepStrictEqual(
            stats.categories.find((c) => c.category === category),
            { category, count: 6, streams: 2, bytes: 6 * 13 }
          )
          const pruned = parse(
            yield* cli(["snapshots", "prune", ...backend.connect, "--keep", "1", "--category", category, "--json"])
          )
          assert.deepStrictEqual(pruned, { deleted: 4 })

          const store = yield* SqlEventStore.make({ ...backend.tables, commandPruning: false })
          yield* store.append(`${category}-c`, [yield* tick(1)], { commandId: `${category}-command` })
          yield* Effect.sleep("20 millis")
          const commands = parse(
            yield* cli(["commands", "prune", ...backend.connect, "--ttl", "1 millis", "--json"])
          ) as {
            readonly deleted: number
          }
          assert.isAtLeast(commands.deleted, 1)
          assert.isTrue(Option.isNone(yield* store.findCommand(`${category}-command`)))
        }).pipe(Effect.scoped, Effect.provide(backend.client)),
      120_000
    )

    it.live(
      "keys erase and status, without the master key",
      () =>
        Effect.gen(function* () {
          const keys = yield* SqlKeyStore.make({
            ...backend.tables,
            masterKey
          })
          const subject = `s-${yield* uniqueCategory}`
          yield* keys.dataKey(subject)
          assert.deepStrictEqual(parse(yield* cli(["keys", "status", ...backend.connect, subject, "--json"])), {
            subject,
            erased: false
          })
          const erased = yield* cli(["keys", "erase", ...backend.connect, subject])
          assert.strictEqual(erased.code, 0, erased.stderr)
          assert.strictEqual(erased.stdout.trim(), `erased ${subject}`)
          assert.strictEqual((yield* keys.dataKeys([subject])).size, 0)
          assert.deepStrictEqual(parse(yield* cli(["keys", "status", ...backend.connect, subject, "--json"])), {
            subject,
            erased: true
          })
        }).pipe(Effect.scoped, Effect.provide(backend.client)),
      120_000
    )

    it.live(
      "projections list, status and rebuild --wait; dead-letters list, retry, discard; sagas list, show",
      () =>
        Effect.gen(function* () {
          const category = yield* uniqueCategory
          const tables = `${backend.readModels}_${category.toLowerCase()}`
          const refusing = new Set([2, 3])
          const projection = balancesProjection({
            name: `cli-${category}`,
            category,
            tables,
            partitions: 2,
            onPoison: "skip",
            refuse: (amount) => refusing.has(amount)
          })
          const events = yield* SqlEventStore.make({ ...backend.tables, commandPruning: false })
          yield* createTables(tables)
          for (let amount = 1; amount <= 10; amount++) {
            yield* events.append(`${category}-${amount % 3}`, [
              yield* Event.make({ type: "Deposited", data: { amount } })
            ])
          }
          const checkpoints = yield* SqlCheckpointStore.make(backend.tables)
          const runner = yield* Effect.fork(
            Projection.run(projection, { pollInterval: "50 millis", leaseTtl: "900 millis" }).pipe(
              Effect.provideService(CheckpointStore.CheckpointStore, checkpoints),
              Effect.provideService(EventStore.EventStore, events)
            )
          )
          const applied = Effect.map(readModel(tables), (m) => m.applied.length)
          yield* waitFor("8 events applied", applied, (n) => n === 8)
          const id = backend.connect

          const listed = parse(yield* cli(["projections", "list", ...id, "--json"])) as ReadonlyArray<{
            readonly id: { readonly name: string }
            readonly partitions: number
          }>
          assert.deepStrictEqual(
            listed.filter((p) => p.id.name === projection.name).map((p) => p.partitions),
            [2]
          )
          const status = parse(yield* cli(["projections", "status", ...id, projection.name, "--json"])) as {
            readonly partitions: ReadonlyArray<{ readonly partition: number }>
          }
          assert.deepStrictEqual(
            status.partitions.map((p) => p.partition),
            [0, 1]
          )

          // dead letters: 2 and 3 were refused; 2 is taken when retried, 3 is discarded
          const letters = parse(
            yield* cli(["dead-letters", "list", ...id, projection.name, "--json"])
          ) as ReadonlyArray<{
            readonly id: number
            readonly event: { readonly data: { readonly amount: number } }
          }>
          assert.deepStrictEqual(letters.map((l) => l.event.data.amount).sort(), [2, 3])
          const [two, three] = [2, 3].map((amount) => letters.find((l) => l.event.data.amount === amount)!.id)
          refusing.delete(2)
          assert.strictEqual((yield* cli(["dead-letters", "retry", ...id, projection.name, String(two)])).code, 0)
          yield* waitFor("the retried letter applied", applied, (n) => n === 9)
          assert.strictEqual((yield* cli(["dead-letters", "discard", ...id, projection.name, String(three)])).code, 0)
          const left = parse(yield* cli(["dead-letters", "list", ...id, projection.name, "--json"]))
          assert.deepStrictEqual(left, [])
          oneLineError(
            yield* cli(["dead-letters", "discard", ...id, projection.name, String(three)]),
            new RegExp(`${three}`)
          )

          // a rebuild the running worker carries out, followed to its end with progress
          const rebuilt = yield* cli(["projections", "rebuild", ...id, projection.name, "--wait", "--json"])
          assert.strictEqual(rebuilt.code, 0, `${rebuilt.stderr}\n${rebuilt.stdout}`)
          const progress = rebuilt.stdout
            .trim()
            .split("\n")
            .map(
              (line) => JSON.parse(line) as { readonly state: string; readonly done: number; readonly total: number }
            )
          assert.strictEqual(progress.at(-1)!.state, "done")
          assert.strictEqual(progress.at(-1)!.done, progress.at(-1)!.total)
          // replayed after the truncate: every event once, but 3, refused again
          yield* waitFor("the rebuilt read model", applied, (n) => n === 9)
          const model = yield* readModel(tables)
          for (const a of model.applied) assert.strictEqual(a.count, 1)
          oneLineError(
            yield* cli(["projections", "status", ...id, "no-such-projection"]),
            /no projection no-such-projection/
          )
          yield* Fiber.interrupt(runner)

          // sagas: an instance saved through the store, listed and shown
          const sagas = yield* SqlSagaStore.make(backend.tables)
          yield* sagas.save(
            `saga-${category}`,
            "i-1",
            0,
            { status: "running", state: { step: 1 }, compensations: [], error: Option.none() },
            { schedule: [{ name: "expire", dueAt: 4_000_000_000_000 }], cancel: [] }
          )
          const instances = parse(yield* cli(["sagas", "list", ...id, `saga-${category}`, "--json"]))
          assert.deepStrictEqual(
            (instances as ReadonlyArray<{ readonly id: string; readonly status: string }>).map((i) => [i.id, i.status]),
            [["i-1", "running"]]
          )
          const shown = parse(yield* cli(["sagas", "show", ...id, `saga-${category}`, "i-1", "--json"])) as {
            readonly state: unknown
            readonly timeouts: ReadonlyArray<{ readonly name: string }>
          }
          assert.deepStrictEqual([shown.state, shown.timeouts.map((t) => t.name)], [{ step: 1 }, ["expire"]])
        }).pipe(Effect.scoped, Effect.provide(backend.client)),
      180_000
    )
  })
}

describe("CLI errors and help", () => {
  it.live("bad options and unreachable databases: one line on stderr, exit code 1", () =>
    Effect.gen(function* () {
      oneLineError(yield* cli(["migrate", "sql", "--dialect", "oracle"]), /pg, sqlite, mysql/)
      oneLineError(yield* cli(["migrate", "status"]), /--url/)
      oneLineError(
        yield* cli(["migrate", "sql", "--dialect", "sqlite", "--schema", "x"]),
        /^error: --schema is PostgreSQL-only/
      )
      oneLineError(
        yield* cli(["migrate", "status", "--url", "postgres://someone:secret@127.0.0.1:1/test"]),
        /^error: cannot connect to postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/test: /
      )
      oneLineError(
        yield* cli(["migrate", "status", "--url", "mysql://root@127.0.0.1:1/test"]),
        /^error: cannot connect to mysql:/
      )
      oneLineError(
        yield* cli(["events", "tail", "--url", path.join(sqliteDir, "missing.db")]),
        /^error: no SQLite database at /
      )
      oneLineError(yield* cli(["events", "tail", "--url", sqliteFile, "--from", "yesterday"]), /^error: --from takes/)
      oneLineError(yield* cli(["snapshots", "prune", "--url", sqliteFile]), /^error: say what to prune/)
      oneLineError(
        yield* cli(["commands", "prune", "--url", sqliteFile, "--ttl", "soon"]),
        /^error: --ttl takes a duration/
      )
      assert.isFalse(fs.existsSync(path.join(sqliteDir, "missing.db")), "a failed command created nothing")
    })
  )

  it.live("--help of every command names it and says what it does", () =>
    Effect.gen(function* () {
      const commands: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [[], "operate effect-eventsourcing's SQL stores"],
        [["migrate"], "print, apply, inspect"],
        [["migrate", "sql"], "print the DDL of every service's tables"],
        [["migrate", "up"], "apply the pending migrations"],
        [["migrate", "status"], "applied and pending"],
        [["events"], "follow it live, or print a stream"],
        [["events", "tail"], "follow the global log live"],
        [["events", "stream"], "print one stream's events"],
        [["streams"], "delete, undelete, hard-delete, truncate"],
        [["streams", "delete"], "soft-delete a stream"],
        [["streams", "undelete"], "undo a soft delete"],
        [["streams", "hard-delete"], "delete a stream for good"],
        [["streams", "truncate"], "remove a stream's events below a version"],
        [["streams", "archive"], "move a stream's events to the archive table"],
        [["retention"], "retention per category"],
        [["retention", "apply"], "apply a category's retention policy now"],
        [["projections"], "list, status, rebuild, reset"],
        [["projections", "list"], "list the registered projections"],
        [["projections", "status"], "show a projection's partitions"],
        [["projections", "rebuild"], "ask the application's running workers to rebuild"],
        [["projections", "reset"], "without truncating its read model"],
        [["dead-letters"], "list, retry, discard"],
        [["dead-letters", "list"], "list a projection's dead letters"],
        [["dead-letters", "retry"], "handle a dead letter's event again"],
        [["dead-letters", "discard"], "delete a dead letter for good"],
        [["sagas"], "saga instances: list, show"],
        [["sagas", "list"], "list a saga's instances"],
        [["sagas", "show"], "show a saga instance"],
        [["snapshots"], "snapshot housekeeping"],
        [["snapshots", "stats"], "count snapshots and their sizes"],
        [["snapshots", "prune"], "delete old snapshots"],
        [["commands"], "handled-command (dedup) records"],
        [["commands", "prune"], "older than the command TTL"],
        [["schema"], "verifying the stored history"],
        [["schema", "lock"], "write or check the schema lock"],
        [["schema", "lock", "write"], "write the schema lock"],
        [["schema", "lock", "check"], "check the application's schemas against the lock"],
        [["schema", "verify"], "decode the stored log with the application's codecs"],
        [["keys"], "crypto-shredding: erase data subjects"],
        [["keys", "erase"], "erase a data subject"],
        [["keys", "status"], "whether a data subject was erased"]
      ]
      // the executable itself answers --help
      const root = yield* cli(["--help"])
      assert.strictEqual(root.code, 0, root.stderr)
      assert.include(root.stdout, commands[0]![1])
      // every command, in this process (a process each took minutes on a loaded machine)
      for (const [command, description] of commands) {
        const help = yield* helpOf(command)
        assert.include(help, description, command.join(" "))
      }
    })
  )
})
