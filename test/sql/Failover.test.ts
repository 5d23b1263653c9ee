/**
 * Failover on PostgreSQL, on a throwaway primary and its streaming replica: the application connects
 * with a multi-host URL (`target_session_attrs=read-write`, see `Postgres.layer`). With synchronous
 * replication on, writers append throughout while the primary is killed and the standby promoted: the
 * appends fail typed and transient during the gap (never a defect), resume on the promoted server, and
 * every acknowledged append is there, once. With it off, an append acknowledged while the standby is
 * down is lost by the failover: what the docs warn about, and proof that the check can fail.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Hosts from "../../src/pg/internal/hosts.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { uniqueCategory } from "../support/ids.js"
import { caughtUp, eventually, query, synchronous, throwawayStandby } from "../support/pgStandby.js"
import { throwawayPostgres, type ThrowawayServer } from "../support/servers.js"

/** The event store of an application connecting to whichever of `servers` accepts writes. */
const applicationStore = (servers: ReadonlyArray<ThrowawayServer>) =>
  Effect.map(
    Layer.build(
      SqlEventStore.layer().pipe(
        Layer.provide(
          Postgres.layer({
            url: `postgres://postgres@${servers.map((s) => `127.0.0.1:${s.port}`).join(",")}/postgres?target_session_attrs=read-write`,
            maxConnections: 8
          })
        )
      )
    ),
    (context) => Context.get(context, EventStore.EventStore)
  )

/** The ids among `eventIds` that `server` does not have, and how many of them it has more than once. */
const missingOn = (server: ThrowawayServer, eventIds: ReadonlyArray<string>) =>
  Effect.map(
    query<{ readonly event_id: string; readonly n: string }>(
      server.url,
      `select event_id::text as event_id, count(*)::text as n from es_events group by event_id`
    ),
    (rows) => {
      const stored = new Map(rows.map((r) => [r.event_id, Number(r.n)]))
      return {
        missing: eventIds.filter((id) => !stored.has(id)),
        duplicated: eventIds.filter((id) => (stored.get(id) ?? 0) > 1)
      }
    }
  )

describe("PostgreSQL failover", () => {
  it.scopedLive(
    "with synchronous replication, appends resume on the promoted standby and none acknowledged is lost",
    () =>
      Effect.gen(function* () {
        const primary = yield* throwawayPostgres
        const standby = yield* throwawayStandby(primary)
        yield* synchronous(primary, true)
        const store = yield* applicationStore([primary, standby])
        const category = yield* uniqueCategory

        const acknowledged: Array<string> = []
        const failures: Array<{ readonly tag: string; readonly transient: boolean }> = []
        // each writer appends to its own stream, one event at a time at the next version; a failed append is
        // retried with the same events (an idempotent append: one written before its acknowledgement was lost
        // is answered with the original result), for as long as the errors are transient
        let promoted = false
        // each writer goes on until it has appended 5 times after the promotion (at most 20,000 times in all)
        const writer = (w: number) =>
          Effect.gen(function* () {
            let after = 0
            for (let i = 0; i < 20_000 && after < 5; i++) {
              const event = yield* Event.make({ type: "Written", data: { w, i } })
              yield* store.append(`${category}-${w}`, [event], { expectedVersion: Event.Exact(i) }).pipe(
                Effect.tapError((error) =>
                  Effect.sync(() =>
                    failures.push({ tag: error._tag, transient: error._tag === "EventStoreError" && error.transient })
                  )
                ),
                Effect.retry({
                  while: (error) => error._tag === "EventStoreError" && error.transient,
                  schedule: Schedule.spaced("100 millis").pipe(Schedule.upTo("120 seconds"))
                })
              )
              acknowledged.push(event.eventId)
              if (promoted) after++
            }
            return after
          })
        const writers = yield* Effect.forEach(
          Array.from({ length: 6 }, (_, w) => w),
          writer,
          { concurrency: "unbounded" }
        ).pipe(Effect.fork)

        yield* eventually(
          "appends acknowledged before the failover",
          Effect.sync(() => acknowledged.length >= 30)
        )
        yield* primary.kill
        yield* standby.promote
        promoted = true
        const appendedAfter = yield* Fiber.join(writers).pipe(Effect.timeout("180 seconds"))

        assert.deepStrictEqual(
          appendedAfter,
          [5, 5, 5, 5, 5, 5],
          "a writer stopped before appending to the promoted server"
        )
        assert.isAbove(failures.length, 0, "no append failed: the failover went unnoticed")
        assert.deepStrictEqual(
          failures.filter((f) => f.tag !== "EventStoreError" || !f.transient),
          [],
          "an append failed with something else than a transient EventStoreError"
        )
        const { duplicated, missing } = yield* missingOn(standby, acknowledged)
        assert.deepStrictEqual(missing, [], "acknowledged appends are missing on the promoted standby")
        assert.deepStrictEqual(duplicated, [], "an append was written twice")
      }),
    300_000
  )

  it.scopedLive(
    "without synchronous replication, appends acknowledged while the standby lags are lost by a failover",
    () =>
      Effect.gen(function* () {
        const primary = yield* throwawayPostgres
        const standby = yield* throwawayStandby(primary)
        const store = yield* applicationStore([primary, standby])
        const category = yield* uniqueCategory
        const append = (name: string) =>
          Effect.flatMap(Event.make({ type: "Written", data: {} }), (event) =>
            Effect.as(store.append(`${category}-${name}`, [event]), event.eventId)
          )
        const replicated = yield* append("replicated")
        yield* caughtUp(primary, standby)
        // the standby goes down (or falls behind): the primary acknowledges appends it alone has
        yield* standby.kill
        const unreplicated = yield* Effect.all([append("a"), append("b"), append("c")])
        yield* primary.kill
        yield* standby.start
        yield* standby.promote
        const { missing } = yield* missingOn(standby, [replicated, ...unreplicated])
        assert.deepStrictEqual(missing, unreplicated)
      }),
    300_000
  )
})

describe("multi-host PostgreSQL URLs", () => {
  it("are read as libpq reads them", () => {
    const parsed = Hosts.parse("postgres://u:p@h1:1,h2:2/db?target_session_attrs=read-write&options=-c%20a%3D1")
    assert.deepStrictEqual(parsed.targets, [
      { host: "h1", port: 1 },
      { host: "h2", port: 2 }
    ])
    assert.strictEqual(parsed.attrs, "read-write")
    // what `pg` connects with: the first host, without the attribute it does not know
    assert.strictEqual(parsed.url.toString(), "postgres://u:p@h1:1/db?options=-c+a%3D1")
    assert.deepStrictEqual(Hosts.parse("postgres://u@h1,[::1]:7/db").targets, [
      { host: "h1", port: 5432 },
      { host: "::1", port: 7 }
    ])
    assert.deepStrictEqual(Hosts.parse("postgres://u@h1/db"), {
      url: new URL("postgres://u@h1/db"),
      targets: [{ host: "h1", port: 5432 }],
      attrs: "any"
    })
    assert.throws(() => Hosts.parse("postgres://h1,h2/db?target_session_attrs=writable"), /target_session_attrs/)
  })
})
