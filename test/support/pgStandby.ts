/**
 * A streaming replica of a throwaway PostgreSQL primary (see `servers.ts`): a base backup taken with
 * `pg_basebackup -R`, started as a hot standby on a free loopback port in a temporary directory, with
 * kill, start and promote controls, and the primary-side switches and waits the replication tests need.
 * Scoped: closing the scope stops it and deletes its data.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as TestServices from "effect/TestServices"
import pg from "pg"
import { asPostgres, awaitPort, freePort, pgBin, postgresOwner, run, tempDir, type ThrowawayServer } from "./servers.js"

export interface ThrowawayStandby extends ThrowawayServer {
  /** Promotes the standby to a primary (`pg_ctl promote`), waiting until it accepts writes. */
  readonly promote: Effect.Effect<void, Error>
}

/** One statement on a connection of its own; its rows. */
export const query = <A extends Record<string, unknown>>(
  url: string,
  text: string
): Effect.Effect<ReadonlyArray<A>, Error> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
        client.on("error", () => {})
        await client.connect()
        return client
      },
      catch: (cause) => new Error(`cannot connect to ${url}: ${String(cause)}`)
    }),
    (client) =>
      Effect.tryPromise({
        try: () => client.query<A>(text),
        catch: (cause) => new Error(`${text}: ${String(cause)}`)
      }).pipe(Effect.map((result) => result.rows)),
    (client) => Effect.promise(() => client.end().catch(() => {}))
  )

/** Retries `check` (on the live clock) until it holds, for up to `seconds`. */
export const eventually = <E>(
  what: string,
  check: Effect.Effect<boolean, E>,
  seconds = 60
): Effect.Effect<void, Error> =>
  check.pipe(
    Effect.filterOrFail(
      (ok) => ok,
      () => new Error(`not yet: ${what}`)
    ),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo(`${seconds} seconds`))),
    Effect.mapError(() => new Error(`timed out after ${seconds} s waiting for ${what}`)),
    Effect.asVoid,
    TestServices.provideLive
  )

/** A hot standby of `primary`, streaming from it (asynchronously, until {@link synchronous}). */
export const throwawayStandby = (primary: ThrowawayServer): Effect.Effect<ThrowawayStandby, Error, Scope.Scope> =>
  Effect.gen(function* () {
    const port = yield* freePort
    const dir = tempDir("ees-pg-standby-")
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
    const promote = Effect.asVoid(pgCtl("-w", "-t", "60", "promote"))
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
        process.once("exit", cleanUp)
        yield* run(
          ...asPostgres(path.join(pgBin, "pg_basebackup"), [
            "-h",
            "127.0.0.1",
            "-p",
            String(primary.port),
            "-U",
            "postgres",
            "-D",
            data,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync"
          ])
        )
        yield* start
      }).pipe(Effect.tapError(() => Effect.sync(cleanUp))),
      () =>
        Effect.sync(() => {
          process.removeListener("exit", cleanUp)
          cleanUp()
        })
    )
    return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, kill, start, promote }
  })

/**
 * Turns synchronous replication on the primary on (every commit waits until a standby flushed it:
 * `synchronous_standby_names = '*'`, `synchronous_commit = on`) or off, and, turning it on, waits until a
 * standby is attached as synchronous.
 */
export const synchronous = (primary: ThrowawayServer, on: boolean): Effect.Effect<void, Error> =>
  Effect.gen(function* () {
    yield* query(primary.url, `alter system set synchronous_standby_names = '${on ? "*" : ""}'`)
    yield* query(primary.url, "alter system set synchronous_commit = on")
    yield* query(primary.url, "select pg_reload_conf()")
    if (on) {
      yield* eventually(
        "a synchronous standby",
        Effect.map(
          query<{ readonly n: string }>(
            primary.url,
            "select count(*)::text as n from pg_stat_replication where sync_state = 'sync'"
          ),
          ([row]) => Number(row?.n) > 0
        )
      )
    }
  })

/** Waits until the standby has replayed everything the primary had written when called. */
export const caughtUp = (primary: ThrowawayServer, standby: ThrowawayServer): Effect.Effect<void, Error> =>
  Effect.gen(function* () {
    const [target] = yield* query<{ readonly lsn: string }>(primary.url, "select pg_current_wal_lsn()::text as lsn")
    yield* eventually(
      `the standby to replay up to ${target!.lsn}`,
      Effect.map(
        query<{ readonly done: boolean }>(
          standby.url,
          `select coalesce(pg_last_wal_replay_lsn() >= '${target!.lsn}'::pg_lsn, false) as done`
        ),
        ([row]) => row?.done === true
      )
    )
  })
