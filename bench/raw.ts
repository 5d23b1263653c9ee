/**
 * Raw baselines: the same physical work done with the plain `pg` driver (better-sqlite3 for SQLite's W1
 * and W2), no library in between. The raw
 * writes and reads go to a table created by the store's own migrations (schema `bench_raw`), so they
 * write and read the same rows with the same columns and indexes: the ratio isolates what the library
 * adds (validation, the concurrency and idempotency checks, the read horizon, Effect), not the cost of
 * the indexes its reads need.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as EventStore from "../src/EventStore.js"
import * as Uuid from "../src/internal/uuid.js"
import * as Postgres from "../src/pg/Postgres.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import * as Sqlite from "../src/sqlite/Sqlite.js"
import { type Measurement, measure, payload, type Sliced } from "./harness.js"

export const schema = "bench_raw"
export const events = `${schema}.es_events`

/** The part of better-sqlite3 (the driver under `@effect/sql-sqlite-node`, which has no types here) used below. */
interface RawSqlite {
  readonly pragma: (pragma: string) => unknown
  readonly prepare: (sql: string) => { readonly run: (...params: ReadonlyArray<unknown>) => unknown }
  readonly close: () => void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new (filename: string) => RawSqlite

const payloadJson = JSON.stringify(payload)
const columns = "stream_id, category, stream_hash, version, event_id, type, schema_version, data, metadata"

/** A pool of `size` connections, with a fresh `bench_raw` schema holding the store's tables. */
export const openPool = async (url: string, size: number): Promise<pg.Pool> => {
  const pool = new pg.Pool({ connectionString: url, max: size })
  await pool.query(`drop schema if exists ${schema} cascade`)
  await Effect.runPromise(
    Effect.asVoid(EventStore.EventStore).pipe(
      Effect.provide(SqlEventStore.layer({ schema }).pipe(Layer.provide(Postgres.layer({ url, maxConnections: 1 }))))
    )
  )
  await pool.query(`create table ${schema}.b0 (id serial primary key, n int not null)`)
  // open every connection before timing
  const clients = await Promise.all(Array.from({ length: size }, () => pool.connect()))
  clients.forEach((c) => c.release())
  return pool
}

export const closePool = async (pool: pg.Pool): Promise<void> => {
  await pool.query(`drop schema if exists ${schema} cascade`)
  await pool.end()
}

const uuid = () => Uuid.fromMillis(Date.now())

/** W1/W2 baseline: one single-row INSERT per transaction (autocommit), `concurrency` connections. */
export const singleInserts = (pool: pg.Pool, count: number, concurrency: number): Promise<Measurement> => {
  const run = uuid()
  return measure(count, concurrency, (i) =>
    pool.query(`insert into ${events} (${columns}) values ($1, 'W', 0, 1, $2, 'Deposited', 1, $3, '{}')`, [
      `W-${run}-${i}`,
      uuid(),
      payloadJson
    ])
  )
}

/** W3 baseline: one multi-row INSERT of `size` rows per transaction. */
export const batchInserts = (pool: pg.Pool, count: number, size: number): Promise<Measurement> => {
  const run = uuid()
  const values = Array.from(
    { length: size },
    (_, j) => `($1, 'W', 0, ${j + 1}, $${j + 3}, 'Deposited', 1, $2, '{}')`
  ).join(", ")
  return measure(count, 1, (i) =>
    pool.query(`insert into ${events} (${columns}) values ${values}`, [
      `W3-${run}-${i}`,
      payloadJson,
      ...Array.from({ length: size }, uuid)
    ])
  )
}

/**
 * W1/W2 baseline on SQLite: better-sqlite3 on a fresh file whose tables the store's migrations made, with
 * the store's pragmas (WAL, `synchronous = FULL`), one single-row INSERT per transaction (autocommit). One
 * connection writes one transaction at a time, so concurrency adds nothing: the writes are sequential. The
 * first `warmup` inserts are not measured; the file is removed on `close`.
 */
export const sqliteSingleInserts = async (warmup = 0): Promise<Sliced> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ees-bench-raw-"))
  const filename = path.join(dir, "events.db")
  const remove = () => fs.rmSync(dir, { recursive: true, force: true })
  let db: RawSqlite | undefined
  try {
    await Effect.runPromise(
      Effect.asVoid(EventStore.EventStore).pipe(
        Effect.provide(SqlEventStore.layer().pipe(Layer.provide(Sqlite.layer({ filename }))))
      )
    )
    const opened = (db = new Database(filename))
    opened.pragma("journal_mode = WAL")
    opened.pragma("synchronous = FULL")
    const insert = opened.prepare(
      `insert into es_events (${columns}, recorded_at) values (?, 'W', 0, 1, ?, 'Deposited', 1, ?, '{}', ?)`
    )
    const run = uuid()
    let next = 0
    const inserts = (count: number) => {
      const first = next
      next += count
      return measure(count, 1, async (i) => insert.run(`W-${run}-${first + i}`, uuid(), payloadJson, Date.now()))
    }
    await inserts(warmup)
    return {
      measure: inserts,
      close: async () => {
        opened.close()
        remove()
      }
    }
  } catch (error) {
    db?.close()
    remove()
    throw error
  }
}
