/**
 * Throwaway servers for fault tests: a PostgreSQL cluster (initdb + pg_ctl from the local packages) and a
 * nats-server with JetStream, each on a free loopback port with its data in a temporary directory, with
 * kill and restart controls. They are scoped: closing the scope stops them and deletes their data. The
 * shared services on the standard ports are never touched.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as TestServices from "effect/TestServices"

export interface ThrowawayServer {
  /** Connection URL. */
  readonly url: string
  readonly port: number
  /** Stops the server abruptly (PostgreSQL: immediate shutdown, i.e. crash recovery on restart; NATS: SIGKILL). */
  readonly kill: Effect.Effect<void, Error>
  /** Starts the server again on the same port and data directory, and waits until it accepts connections. */
  readonly start: Effect.Effect<void, Error>
}

export const pgBin = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin"
const natsServer = process.env.NATS_SERVER ?? "/usr/sbin/nats-server"

/** A port that was free a moment ago on 127.0.0.1. */
export const freePort: Effect.Effect<number> = Effect.async((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

export const run = (command: string, args: ReadonlyArray<string>): Effect.Effect<string, Error> =>
  Effect.async((resume) => {
    execFile(command, args, { timeout: 120_000 }, (error, stdout, stderr) =>
      resume(
        error
          ? Effect.fail(new Error(`${command} ${args.join(" ")} failed: ${stderr || error.message}`))
          : Effect.succeed(stdout)
      )
    )
  })

const canConnect = (port: number): Effect.Effect<void, Error> =>
  Effect.async((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.void)
    })
    socket.once("error", (error) => resume(Effect.fail(error)))
  })

/** Waits until something accepts TCP connections on `port` (up to 30 s, on the live clock even under TestClock). */
export const awaitPort = (port: number): Effect.Effect<void, Error> =>
  canConnect(port).pipe(
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo(Duration.seconds(30)))),
    Effect.mapError((error) => new Error(`nothing listens on port ${port}: ${error.message}`)),
    TestServices.provideLive
  )

export const tempDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

// initdb and pg_ctl refuse to run as root; run them as the packages' postgres user then
export const asPostgres = (command: string, args: ReadonlyArray<string>): [string, ReadonlyArray<string>] =>
  process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args]

export const postgresOwner = (): { uid: number; gid: number } => ({
  uid: Number(execFileSync("id", ["-u", "postgres"]).toString().trim()),
  gid: Number(execFileSync("id", ["-g", "postgres"]).toString().trim())
})

/**
 * A fresh PostgreSQL cluster. `fsync=off` keeps it quick; it changes nothing for process crashes (the
 * operating system still has the data), which is what `kill` simulates.
 */
export const throwawayPostgres: Effect.Effect<ThrowawayServer, Error, Scope.Scope> = Effect.gen(function* () {
  const port = yield* freePort
  const dir = tempDir("ees-pg-")
  const data = path.join(dir, "data")
  if (process.getuid?.() === 0) {
    const { gid, uid } = postgresOwner()
    fs.chownSync(dir, uid, gid)
  }
  const pgCtl = (...args: ReadonlyArray<string>) =>
    run(...asPostgres(path.join(pgBin, "pg_ctl"), ["-D", data, ...args]))
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`
  const start = pgCtl("-l", path.join(dir, "log"), "-w", "-t", "60", "-o", options, "start").pipe(
    Effect.zipRight(awaitPort(port))
  )
  const kill = Effect.asVoid(pgCtl("-m", "immediate", "stop"))
  const cleanUp = () => {
    try {
      execFileSync(...asPostgres(path.join(pgBin, "pg_ctl"), ["-D", data, "-m", "immediate", "stop"]), {
        stdio: "ignore"
      })
    } catch {
      // not running
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }
  yield* Effect.acquireRelease(
    Effect.gen(function* () {
      yield* run(
        ...asPostgres(path.join(pgBin, "initdb"), [
          "-D",
          data,
          "-U",
          "postgres",
          "--auth=trust",
          "--no-sync",
          "-E",
          "UTF8",
          "--locale=C"
        ])
      )
      process.once("exit", cleanUp)
      yield* start
    }).pipe(Effect.tapError(() => Effect.sync(cleanUp))),
    () =>
      Effect.sync(() => {
        process.removeListener("exit", cleanUp)
        cleanUp()
      })
  )
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, kill, start }
})

/** A throwaway nats-server, whose configuration can be changed while it runs. */
export interface ThrowawayNats extends ThrowawayServer {
  /** Replaces the configuration file's text and has the server reload it (it applies it shortly after). */
  readonly reload: (config: string) => Effect.Effect<void, Error>
}

/**
 * nats-server configuration (for {@link throwawayNatsWith} and `reload`) whose one user, taken by every
 * connection without credentials, may not subscribe to `denied`.
 */
export const subscribeDenied = (denied: ReadonlyArray<string>): string => `
  authorization {
    users: [{ user: app, password: app, permissions: { subscribe: { deny: ${JSON.stringify(denied)} } } }]
  }
  no_auth_user: app
`

/** A fresh nats-server with JetStream (file storage in a temporary directory). */
export const throwawayNats: Effect.Effect<ThrowawayNats, Error, Scope.Scope> = Effect.suspend(() =>
  throwawayNatsWith("")
)

/**
 * A fresh nats-server with JetStream and `config` (nats-server configuration text, e.g. users and
 * permissions) as its configuration file; the address, port and storage are set apart.
 */
export const throwawayNatsWith = (config: string): Effect.Effect<ThrowawayNats, Error, Scope.Scope> =>
  Effect.gen(function* () {
    const port = yield* freePort
    const dir = tempDir("ees-nats-")
    const configFile = path.join(dir, "nats.conf")
    // everything in the file (command-line flags are not reapplied the same way on a reload)
    const write = (text: string) =>
      fs.writeFileSync(
        configFile,
        `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(dir)} }\n${text}`
      )
    write(config)
    let child: ChildProcess | undefined
    const killNow = () => {
      child?.kill("SIGKILL")
    }
    const kill = Effect.async<void>((resume) => {
      const current = child
      child = undefined
      if (current === undefined || current.exitCode !== null || current.signalCode !== null) return resume(Effect.void)
      current.once("exit", () => resume(Effect.void))
      current.kill("SIGKILL")
    })
    const start = Effect.suspend(() => {
      child = spawn(natsServer, ["-c", configFile], { stdio: "ignore" })
      return awaitPort(port)
    })
    const reload = (text: string) =>
      Effect.try({
        try: () => {
          write(text)
          if (child?.kill("SIGHUP") !== true) throw new Error("the nats-server is not running")
        },
        catch: (cause) => (cause instanceof Error ? cause : new Error(String(cause)))
      })
    yield* Effect.acquireRelease(Effect.sync(() => process.once("exit", killNow)).pipe(Effect.zipRight(start)), () =>
      kill.pipe(
        Effect.zipRight(
          Effect.sync(() => {
            process.removeListener("exit", killNow)
            fs.rmSync(dir, { recursive: true, force: true })
          })
        )
      )
    )
    return { url: `nats://127.0.0.1:${port}`, port, kill, start, reload }
  })
