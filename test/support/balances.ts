/**
 * A SQL read model for projection tests, shared by the tests and the worker process they kill: a balance
 * per stream, and a count of applications per event, so an event applied twice shows up as a count of 2.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Projection from "../../src/Projection.js"

export const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Number })

export interface BalancesOptions {
  readonly name: string
  readonly category: string
  /** Table name prefix of the read model (a validated identifier: test-made). */
  readonly tables: string
  readonly partitions?: number
  readonly batchSize?: number
  readonly version?: number
  readonly onPoison?: Projection.PoisonPolicy
  /** Whether the handler refuses an event (fails with a defect: poison). */
  readonly refuse?: (amount: number) => boolean
  /** Runs before each event is applied, inside the transaction (to stall or observe a batch). */
  readonly beforeEach?: (amount: number) => Effect.Effect<void>
}

export const createTables = (tables: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`create table if not exists ${sql(`${tables}_balances`)} (
        stream_id varchar(255) primary key, balance bigint not null)`,
      sql`create table if not exists ${sql(`${tables}_applied`)} (
        event_id varchar(64) primary key, stream_id varchar(255) not null, version integer not null, count integer not null)`
    ])
  )

export const balancesProjection = (options: BalancesOptions) =>
  Projection.make({
    name: options.name,
    events: Deposited,
    categories: [options.category],
    retry: Schedule.recurs(1),
    ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    ...(options.version === undefined ? {} : { version: options.version }),
    ...(options.onPoison === undefined ? {} : { onPoison: options.onPoison }),
    handle: (event, envelope) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        if (options.refuse?.(event.amount) === true) return yield* Effect.dieMessage(`refusing ${event.amount}`)
        if (options.beforeEach !== undefined) yield* options.beforeEach(event.amount)
        const mysql = sql.onDialectOrElse({ mysql: () => true, orElse: () => false })
        const applied = sql(`${options.tables}_applied`)
        const balances = sql(`${options.tables}_balances`)
        yield* mysql
          ? sql`insert into ${applied} (event_id, stream_id, version, count)
              values (${envelope.eventId}, ${envelope.streamId}, ${envelope.version}, 1)
              on duplicate key update count = count + 1`
          : sql`insert into ${applied} as a (event_id, stream_id, version, count)
              values (${envelope.eventId}, ${envelope.streamId}, ${envelope.version}, 1)
              on conflict (event_id) do update set count = a.count + 1`
        yield* mysql
          ? sql`insert into ${balances} (stream_id, balance) values (${envelope.streamId}, ${event.amount})
              on duplicate key update balance = balance + values(balance)`
          : sql`insert into ${balances} as b (stream_id, balance) values (${envelope.streamId}, ${event.amount})
              on conflict (stream_id) do update set balance = b.balance + excluded.balance`
      }),
    truncate: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.all([
        sql`delete from ${sql(`${options.tables}_balances`)}`,
        sql`delete from ${sql(`${options.tables}_applied`)}`
      ])
    )
  })

/** The read model: balances by stream, and application counts by event. */
export const readModel = (tables: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const balances = yield* sql<{ readonly stream_id: string; readonly balance: string | number }>`
      select stream_id, balance from ${sql(`${tables}_balances`)} order by stream_id`
    const applied = yield* sql<{
      readonly event_id: string
      readonly stream_id: string
      readonly version: number
      readonly count: number
    }>`select event_id, stream_id, version, count from ${sql(`${tables}_applied`)} order by stream_id, version`
    return {
      balances: balances.map((b) => [b.stream_id, Number(b.balance)] as const),
      applied: applied.map((a) => ({ eventId: a.event_id, streamId: a.stream_id, version: a.version, count: a.count }))
    }
  })
