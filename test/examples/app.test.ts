/**
 * The example application as a user runs it: `npm run demo` completes its scenario and exits 0, and
 * `npm start` serves the API until SIGTERM or SIGINT, then shuts down cleanly (exit 0) and keeps its events
 * in the SQLite file for the next start; at shutdown it drains the requests in flight within its grace
 * period, and no client waits past it.
 *
 * The application runs as `npm start` runs it: the `start` script's command (`node --import tsx ...`), so
 * a signal goes to the application's own process. (Run through the `tsx` command, a signal went to tsx,
 * which relays it and, when the application has not acknowledged it within 30 ms, kills it and exits with
 * 128 + the signal: on a loaded machine the test saw 130; `signalWhileStopped` reproduces that load.)
 * Signals are sent once the application answers `/health`: its handler, installed before the server
 * listens, is then in place.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect as connectNats } from "@nats-io/transport-node"
import * as Mysql from "../../src/mysql/Mysql.js"
import * as Postgres from "../../src/pg/Postgres.js"
import { mysqlUrl } from "../support/config.js"
import { freshPgDatabase } from "../support/sql.js"
import { freePort } from "../support/servers.js"

const tsx = path.resolve("node_modules", ".bin", "tsx")

/** An npm script's command (the program, resolved, and its arguments), to run here without npm in between. */
const scriptCommand = (script: string): readonly [string, ...Array<string>] => {
  const scripts = JSON.parse(fs.readFileSync("package.json", "utf8")).scripts as Record<string, string>
  const [program, ...args] = scripts[script]!.split(" ")
  return [program === "node" ? process.execPath : path.resolve("node_modules", ".bin", program!), ...args]
}

/**
 * The process that runs the application: `pid`, or its deepest descendant when `pid` only launched it
 * (Linux: read from /proc).
 */
const applicationProcess = (pid: number): number => {
  const file = `/proc/${pid}/task/${pid}/children`
  const children = fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim().split(/\s+/).filter(Boolean) : []
  return children.length === 0 ? pid : applicationProcess(Number(children[0]))
}

/**
 * Sends `signal` while the application's process is stopped (SIGSTOP, then SIGCONT): the signal reaches
 * it when it next runs, as on a machine too loaded to schedule it at once. Only a process that handles the
 * signal itself does not care how long that takes.
 */
const signalWhileStopped = (child: ChildProcess, signal: NodeJS.Signals) =>
  Effect.gen(function* () {
    const app = applicationProcess(child.pid!)
    process.kill(app, "SIGSTOP")
    child.kill(signal)
    yield* Effect.sleep("300 millis")
    // (gone already if whatever received the signal killed it)
    yield* Effect.ignore(Effect.try(() => process.kill(app, "SIGCONT")))
  })

/** Runs a command; its output so far, a wait for a line of it, and its exit are read through the handles. */
const run = (command: string, args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
      let output = ""
      const waiting: Array<readonly [RegExp, () => void]> = []
      const onData = (chunk: unknown) => {
        output += chunk
        for (const [i, [pattern, resume]] of [...waiting.entries()].reverse()) {
          if (pattern.test(output)) {
            waiting.splice(i, 1)
            resume()
          }
        }
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      /** Waits until the output matches `pattern` (the test's own timeout bounds the wait). */
      const printed = (pattern: RegExp) =>
        Effect.async<void>((resume) => {
          if (pattern.test(output)) return resume(Effect.void)
          waiting.push([pattern, () => resume(Effect.void)])
        })
      return { child, output: () => output, exited, printed }
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  )

/** A script through the `tsx` command (the demo). */
const start = (script: string, env: Record<string, string>) => run(tsx, [script], env)

/** The application as `npm start` runs it. */
const startApp = (env: Record<string, string>) => {
  const [program, ...args] = scriptCommand("start")
  return run(program, args, env)
}

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "bank-app-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

// the responses are checked field by field
type Json = any

/** The environment without the variables that would switch the app to PostgreSQL or NATS. */
const embedded = { DATABASE_URL: "", NATS_URL: "" }

/** A raw HTTP/1.1 connection, to hold a request in flight: what it received so far, and when it closed. */
const connect = (port: number) =>
  Effect.acquireRelease(
    Effect.async<{
      readonly socket: net.Socket
      readonly received: () => string
      readonly closed: Promise<void>
      readonly receivedMatching: (pattern: RegExp) => Effect.Effect<void>
    }>((resume) => {
      const socket = net.connect(port, "127.0.0.1")
      let received = ""
      const waiting: Array<readonly [RegExp, () => void]> = []
      socket.setEncoding("utf8")
      socket.on("data", (chunk: string) => {
        received += chunk
        for (const [i, [pattern, done]] of [...waiting.entries()].reverse()) {
          if (pattern.test(received)) {
            waiting.splice(i, 1)
            done()
          }
        }
      })
      socket.on("error", () => {})
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
      const receivedMatching = (pattern: RegExp) =>
        Effect.async<void>((done) => {
          if (pattern.test(received)) return done(Effect.void)
          waiting.push([pattern, () => done(Effect.void)])
        })
      socket.once("connect", () =>
        resume(Effect.succeed({ socket, received: () => received, closed, receivedMatching }))
      )
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

/**
 * Starts a deposit whose body is held back, and waits until the server has taken the request: with
 * `Expect: 100-continue`, Node answers `100 Continue` just before it hands the request to the application.
 */
const heldDeposit = (port: number, accountId: string, body: string) =>
  Effect.gen(function* () {
    const connection = yield* connect(port)
    connection.socket.write(
      `POST /accounts/${accountId}/deposit HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nexpect: 100-continue\r\n\r\n`
    )
    yield* connection.receivedMatching(/^HTTP\/1\.1 100 Continue\r\n\r\n/)
    return connection
  })

/** A JSON POST; its status and body (status 0 and the error's code when the connection failed). */
const postJson = (url: string, body: object) =>
  Effect.promise(() =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(120_000)
    }).then(
      async (response) => ({ status: response.status, text: await response.text() }),
      (error: Error) => ({ status: 0, text: String((error.cause as { code?: string })?.code ?? error.name) })
    )
  )

describe("examples/bank application", () => {
  it.scopedLive(
    "npm run demo runs the scenario end to end and exits 0",
    () =>
      Effect.gen(function* () {
        const demo = yield* start("examples/bank/demo.ts", embedded)
        const code = yield* Effect.promise(() => demo.exited)
        const output = demo.output()
        assert.strictEqual(code, 0, output)
        assert.match(output, /transfer of 250 from alice\w+ to bob\w+: completed/)
        assert.match(output, /transfer of 100 from alice\w+ to nobody\w+: compensated/)
        assert.match(output, /balance of alice\w+: 3250/)
        assert.match(output, /balance of bob\w+: 350/)
        assert.match(output, /alerts .*: 1500/)
        assert.include(output, "demo done")
      }),
    90_000
  )

  it.scopedLive(
    "npm start serves until SIGTERM, stops cleanly, and keeps its events",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const port = yield* freePort
        const env = { ...embedded, PORT: String(port), BANK_DB: path.join(dir, "bank.db") }
        const url = `http://127.0.0.1:${port}`
        const request = (method: string, route: string, body?: object) =>
          Effect.tryPromise(() =>
            fetch(`${url}${route}`, {
              method,
              headers: { "content-type": "application/json" },
              ...(body === undefined ? {} : { body: JSON.stringify(body) })
            }).then(async (response) => ({ status: response.status, body: (await response.json()) as Json }))
          )
        const serving = Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))

        const first = yield* startApp(env)
        yield* Effect.retry(request("GET", "/health"), serving)
        assert.strictEqual((yield* request("POST", "/accounts/ada/open", { owner: "Ada" })).status, 201)
        assert.strictEqual((yield* request("POST", "/accounts/ada/deposit", { amount: 70 })).status, 200)
        const invalid = yield* request("POST", "/accounts/ada/deposit", { amount: -1 })
        assert.strictEqual(invalid.status, 400)
        const refused = yield* request("POST", "/accounts/ada/withdraw", { amount: 1000 })
        assert.strictEqual(refused.status, 409)
        assert.strictEqual(refused.body._tag, "InsufficientFunds")
        const account = yield* request("GET", "/accounts/ada").pipe(
          Effect.filterOrFail((r) => r.status === 200 && r.body.balance === 70),
          Effect.retry(serving)
        )
        assert.strictEqual(account.body.owner, "Ada")
        first.child.kill("SIGTERM")
        assert.strictEqual(yield* Effect.promise(() => first.exited), 0, first.output())
        assert.include(first.output(), `http://localhost:${port}/`)

        // a second start finds the account and its read model where the first left them
        const second = yield* startApp(env)
        const again = yield* request("GET", "/accounts/ada").pipe(Effect.retry(serving))
        assert.strictEqual(again.body.balance, 70)
        const stream = yield* request("GET", "/streams/Account-ada")
        assert.deepStrictEqual(
          stream.body.events.map((e: { type: string }) => e.type),
          ["AccountOpened", "MoneyDeposited"]
        )
        // SIGINT does what SIGTERM does, also when the application cannot run at the moment it is sent
        yield* signalWhileStopped(second.child, "SIGINT")
        assert.strictEqual(yield* Effect.promise(() => second.exited), 0, second.output())
      }),
    90_000
  )

  it.scopedLive(
    "SIGTERM with requests in flight: answers them within the grace period, closes the rest, exits 0",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const port = yield* freePort
        const graceSeconds = 3
        const env = {
          ...embedded,
          PORT: String(port),
          BANK_DB: path.join(dir, "bank.db"),
          BANK_SHUTDOWN_GRACE: `${graceSeconds} seconds`
        }
        const url = `http://127.0.0.1:${port}`
        const post = (route: string, body: object) => postJson(`${url}${route}`, body)
        const serving = Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))

        const app = yield* startApp(env)
        yield* Effect.retry(
          Effect.tryPromise(() => fetch(`${url}/health`)).pipe(Effect.filterOrFail((r) => r.ok)),
          serving
        )
        assert.strictEqual((yield* post("/accounts/ada/open", { owner: "Ada" })).status, 201)

        // two requests in flight: one will complete during the drain, one never sends its body
        const completing = yield* heldDeposit(port, "ada", JSON.stringify({ amount: 5 }))
        const stuck = yield* heldDeposit(port, "ada", JSON.stringify({ amount: 7 }))
        // and clients that keep sending commands through the shutdown, each until its connection is refused;
        // the signal goes once each has had a command handled
        const started = yield* Effect.forEach(Array.from({ length: 8 }), () => Deferred.make<void>())
        const clients = yield* Effect.forEach(
          started,
          (first, client) =>
            Effect.gen(function* () {
              const answers: Array<{ status: number; text: string }> = []
              for (let n = 0; ; n++) {
                const answer = yield* post(`/accounts/c${client}n${n}/open`, { owner: "Client" })
                answers.push(answer)
                if (answer.status === 201) yield* Deferred.succeed(first, undefined)
                if (answer.status === 0 && answer.text === "ECONNREFUSED") return answers
              }
            }),
          { concurrency: "unbounded" }
        ).pipe(Effect.fork)
        yield* Effect.forEach(started, Deferred.await, { discard: true })

        const signalled = performance.now()
        app.child.kill("SIGTERM")
        yield* app.printed(/shutting down: stopped accepting/)
        // the held request completes now, during the drain, and is answered, closing its connection
        completing.socket.write(JSON.stringify({ amount: 5 }))
        yield* completing.receivedMatching(/HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n\{"version":2,"readAfter":\{.*\}\}/)
        assert.match(completing.received(), /\r\nconnection: close\r\n/i)
        yield* Effect.promise(() => completing.closed)

        // the request still running after the grace period has its connection closed, without an answer
        yield* Effect.promise(() => stuck.closed)
        assert.notMatch(stuck.received(), /HTTP\/1\.1 [2-5]\d\d/)
        assert.strictEqual(yield* Effect.promise(() => app.exited), 0, app.output())
        const seconds = (performance.now() - signalled) / 1000
        // a generous bound: the grace period plus the rest of the shutdown on a loaded machine
        assert.isBelow(seconds, graceSeconds + 45, app.output())
        assert.match(app.output(), /closed 1 request\(s\) still running after the grace period/)

        // every client got an answer or a closed connection; none waited for its timeout; no 5xx but 503
        const answers = (yield* clients.await).pipe((exit) => (exit._tag === "Success" ? exit.value.flat() : []))
        assert.isAtLeast(answers.filter((a) => a.status === 201).length, 8)
        for (const answer of answers) {
          assert.notStrictEqual(answer.text, "TimeoutError", "a client waited for its timeout")
          assert.isTrue(
            answer.status === 201 || answer.status === 503 || answer.status === 0,
            `${answer.status} ${answer.text}`
          )
        }
      }),
    120_000
  )

  it.scopedLive(
    "on MariaDB the startup line names MariaDB, and SIGTERM stops it cleanly",
    () =>
      Effect.gen(function* () {
        // a database of its own: the application uses the default table names
        const database = `bank_app_${process.pid}_${Math.floor(Math.random() * 1e9)}`
        const admin = (statement: string) =>
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
            Effect.provide(Mysql.layer({ url: mysqlUrl, maxConnections: 1 })),
            Effect.orDie
          )
        yield* Effect.acquireRelease(admin(`create database ${database}`), () =>
          admin(`drop database if exists ${database}`)
        )
        const port = yield* freePort
        const app = yield* startApp({
          ...embedded,
          DATABASE_URL: mysqlUrl.replace(/\/[^/]*$/, `/${database}`),
          PORT: String(port)
        })
        yield* app.printed(/bank on .* with the/)
        assert.match(app.output(), /bank on MariaDB \d+\.\d+[.\d]* \(DATABASE_URL\) with the in-process event bus/)
        assert.notInclude(app.output(), "PostgreSQL")
        yield* Effect.retry(
          Effect.tryPromise(() => fetch(`http://127.0.0.1:${port}/health`)).pipe(Effect.filterOrFail((r) => r.ok)),
          Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))
        )
        app.child.kill("SIGTERM")
        assert.strictEqual(yield* Effect.promise(() => app.exited), 0, app.output())
      }),
    120_000
  )

  it.scopedLive(
    "npm run cluster runs the bank as three processes on PostgreSQL and a 3-node NATS cluster, then stops cleanly",
    () =>
      Effect.gen(function* () {
        const databaseUrl = yield* freshPgDatabase("bank_cluster")
        const port = yield* freePort
        const [program, ...args] = scriptCommand("cluster")
        const keys = yield* tempDir
        const cluster = yield* run(program, args, {
          DATABASE_URL: databaseUrl,
          // the three processes share the master key (by default data/bank.key, made by the first)
          BANK_MASTER_KEY_FILE: path.join(keys, "bank.key"),
          PORT: String(port),
          NATS_SERVER: process.env.NATS_SERVER ?? "/usr/sbin/nats-server"
        })
        yield* cluster.printed(/the bank runs as api, projections and relay/)
        yield* cluster.printed(/\[projections\] .*bank \(projections\) on PostgreSQL/)
        yield* cluster.printed(/\[relay\] .*bank \(relay\) on PostgreSQL/)
        const [, seeds, dir] = /NATS cluster up: (\S+) \(data in (\S+)\)/.exec(cluster.output())!
        // the bank's stream is replicated on the three nodes
        const replicas = yield* Effect.promise(async () => {
          const connection = await connectNats({ servers: seeds!.split(",") })
          try {
            const info = await (await jetstreamManager(connection)).streams.info("BANK_EVENTS")
            return [info.config.num_replicas, 1 + (info.cluster?.replicas?.length ?? 0)]
          } finally {
            await connection.close()
          }
        })
        assert.deepStrictEqual(replicas, [3, 3])

        // commands go to the api process; the balance comes from the projections process's read model and
        // the alert from the relay process, through the NATS cluster
        const post = (route: string, body: object) =>
          Effect.map(postJson(`http://127.0.0.1:${port}${route}`, body), (answer) => answer.status)
        assert.strictEqual(yield* post("/accounts/cl/open", { owner: "Cluster" }), 201)
        assert.strictEqual(yield* post("/accounts/cl/deposit", { amount: 5000 }), 200)
        assert.strictEqual(yield* post("/accounts/cl/withdraw", { amount: 2000 }), 200)
        const balance = Effect.promise(() =>
          fetch(`http://127.0.0.1:${port}/accounts/cl`).then((r) => (r.ok ? (r.json() as Promise<Json>) : undefined))
        ).pipe(Effect.map((account) => account?.balance))
        yield* balance.pipe(
          Effect.filterOrFail((b) => b === 3000),
          Effect.retry(Schedule.spaced("200 millis"))
        )
        const alerts = Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ readonly amount: number }>`select amount from bank_alerts where account_id = 'cl'`.pipe(
            Effect.orElseSucceed(() => [])
          )
        ).pipe(Effect.provide(Postgres.layer({ url: databaseUrl, maxConnections: 1 })), Effect.orDie)
        const recorded = yield* alerts.pipe(
          Effect.filterOrFail((rows) => rows.length > 0),
          Effect.retry(Schedule.spaced("200 millis"))
        )
        assert.deepStrictEqual(
          recorded.map((row) => Number(row.amount)),
          [2000]
        )

        cluster.child.kill("SIGTERM")
        assert.strictEqual(yield* Effect.promise(() => cluster.exited), 0, cluster.output())
        for (const role of ["api", "projections", "relay"]) assert.include(cluster.output(), `${role} exited 0`)
        assert.isFalse(fs.existsSync(dir!), `${dir} is removed`)
      }),
    240_000
  )
})
