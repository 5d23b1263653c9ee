/**
 * Raw baselines: the same physical work done with the plain `pg` driver, no library in between. Every
 * store figure is reported as a ratio to these, measured in the same run.
 */
import { randomUUID } from "node:crypto"
import pg from "pg"
import { type Measurement, measure, payload } from "./harness.js"

export const schema = "bench_raw"

const payloadJson = JSON.stringify(payload)

/** A pool of `size` connections to a fresh `bench_raw` schema holding an events-like table. */
export const openPool = async (url: string, size: number): Promise<pg.Pool> => {
  const pool = new pg.Pool({ connectionString: url, max: size })
  await pool.query(`drop schema if exists ${schema} cascade`)
  await pool.query(`create schema ${schema}`)
  await pool.query(`create table ${schema}.events (
    position bigserial primary key,
    stream_id text not null,
    version int not null,
    event_id uuid not null,
    type text not null,
    data jsonb not null,
    metadata jsonb not null,
    recorded_at timestamptz not null default now(),
    unique (stream_id, version)
  )`)
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

/** W1/W2 baseline: one single-row INSERT per transaction (autocommit), `concurrency` connections. */
export const singleInserts = (pool: pg.Pool, count: number, concurrency: number): Promise<Measurement> => {
  const run = randomUUID()
  return measure(count, concurrency, (i) =>
    pool.query(
      `insert into ${schema}.events (stream_id, version, event_id, type, data, metadata) values ($1, 1, $2, 'Deposited', $3, '{}')`,
      [`W-${run}-${i}`, randomUUID(), payloadJson]
    )
  )
}

/** W3 baseline: one multi-row INSERT of `size` rows per transaction. */
export const batchInserts = (pool: pg.Pool, count: number, size: number): Promise<Measurement> => {
  const run = randomUUID()
  const values = Array.from({ length: size }, (_, j) => `($1, ${j + 1}, $${j + 3}, 'Deposited', $2, '{}')`).join(", ")
  return measure(count, 1, (i) =>
    pool.query(`insert into ${schema}.events (stream_id, version, event_id, type, data, metadata) values ${values}`, [
      `W3-${run}-${i}`,
      payloadJson,
      ...Array.from({ length: size }, () => randomUUID())
    ])
  )
}
