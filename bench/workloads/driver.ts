/**
 * B0: driver overhead. `select $1` and a 1-row insert + commit, one client, raw `pg` versus
 * `@effect/sql-pg`. Reported in µs/op (lower is better).
 */
import { PgClient } from "@effect/sql-pg"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type pg from "pg"
import { measure, measureEffect, median, type Options, type Result, result, scaled } from "../harness.js"
import { schema } from "../raw.js"

const microsPerOp = (m: { readonly ops: number; readonly seconds: number }) => (m.seconds * 1e6) / m.ops

export const B0 = async (options: Options, pool: pg.Pool): Promise<ReadonlyArray<Result>> => {
  const ops = scaled(options, 2000, 50)
  const raw = {
    select: await median(
      options.repetitions,
      () => measure(ops, 1, (i) => pool.query("select $1::int as n", [i])),
      microsPerOp
    ),
    insert: await median(
      options.repetitions,
      () => measure(ops, 1, (i) => pool.query(`insert into ${schema}.b0 (n) values ($1)`, [i])),
      microsPerOp
    )
  }
  const effect = await Effect.runPromise(
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const run = (op: (i: number) => Effect.Effect<unknown, unknown>) =>
        Effect.promise(() =>
          median(options.repetitions, () => Effect.runPromise(Effect.orDie(measureEffect(ops, 1, op))), microsPerOp)
        )
      return {
        select: yield* run((i) => sql`select ${i}::int as n`),
        insert: yield* run((i) => sql`insert into ${sql(schema)}.b0 (n) values (${i})`)
      }
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(options.pgUrl), maxConnections: 1 })))
  )
  return (["select", "insert"] as const).map((variant) =>
    result({
      id: "B0",
      store: "postgres",
      variant,
      value: microsPerOp(effect[variant]),
      unit: "µs/op",
      baseline: microsPerOp(raw[variant]),
      lowerIsBetter: true,
      notes: "@effect/sql-pg vs raw pg"
    })
  )
}
