/**
 * Group commit on PostgreSQL: concurrent appends share transactions, yet each keeps its own checks and
 * fails alone.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import pg from "pg"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as AppendPreparation from "../../src/internal/appendPreparation.js"
import { tables } from "../../src/sql/migrations.js"
import { batchItemJson } from "../../src/pg/internal/append.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { pgUrl } from "../support/config.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { settle } from "../support/settle.js"
import { pgWithSchema } from "../support/sql.js"

const schema = isolatedPrefix(import.meta.url)
const Live = SqlEventStore.layer({ schema, groupCommit: { maxBatch: 100, writers: 1 } }).pipe(
  Layer.provide(pgWithSchema(schema))
)

const tick = Event.make({ type: "Tick", data: {} })

describe("SqlEventStore group commit", () => {
  layer(Live, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.effect("of 100 concurrent appends one conflicting append fails alone, and they share transactions", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const category = yield* uniqueCategory
        const exits = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) =>
            Effect.flatMap(tick, (e) =>
              Effect.exit(
                store.append(`${category}-${i}`, [e], { expectedVersion: i === 37 ? Event.Exact(5) : Event.NoStream })
              )
            ),
          { concurrency: "unbounded" }
        )
        exits.forEach((exit, i) => assert.strictEqual(Exit.isSuccess(exit), i !== 37, `append ${i}`))
        const failure = yield* Effect.flip(exits[37]!)
        assert.strictEqual(failure._tag, "ConcurrencyConflict")
        yield* settle
        const events = [...(yield* Stream.runCollect(store.readAll({ categories: [category] })))]
        assert.strictEqual(events.length, 99)
        const transactions = new Set(events.map((e) => e.transaction))
        assert.isBelow(transactions.size, 50, "appends were not grouped")
      })
    )

    it.effect("a taken unique value or a duplicate command fails its own append only", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const category = yield* uniqueCategory
        const taken = { constraint: `seat-${category}`, value: "1A" }
        yield* store.append(`${category}-owner`, [yield* tick], { claims: [taken], commandId: `done-${category}` })
        const exits = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) =>
            Effect.flatMap(tick, (e) =>
              Effect.exit(
                store.append(`${category}-${i}`, [e], {
                  ...(i === 3 ? { claims: [taken] } : {}),
                  ...(i === 4 ? { commandId: `done-${category}` } : {})
                })
              )
            ),
          { concurrency: "unbounded" }
        )
        assert.strictEqual((yield* Effect.flip(exits[3]!))._tag, "UniqueConstraintViolation")
        assert.strictEqual((yield* Effect.flip(exits[4]!))._tag, "DuplicateCommand")
        assert.strictEqual(exits.filter(Exit.isSuccess).length, 38)
        assert.strictEqual(yield* store.streamVersion(`${category}-3`), 0)
        assert.strictEqual(yield* store.streamVersion(`${category}-4`), 0)
      })
    )

    it.effect("in a batch, every expected version is checked against its stream, and retries are recognized", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const category = yield* uniqueCategory
        const existing = (name: string) => `${category}-${name}`
        // streams at version 2 (and one whose events are retried below)
        for (const name of ["ns", "se", "ex", "exBad", "any", "empty", "retry", "overlap"]) {
          yield* store.append(existing(name), [yield* tick, yield* tick])
        }
        const retried = [...(yield* Stream.runCollect(store.readStream(existing("retry"))))]
        const overlapping = [...(yield* Stream.runCollect(store.readStream(existing("overlap"))))]
        const again = (events: ReadonlyArray<Event.RecordedEvent>) =>
          events.map((e) => ({
            eventId: e.eventId,
            type: e.type,
            schemaVersion: e.schemaVersion,
            data: e.data,
            metadata: e.metadata
          }))
        const fresh = (name: string) => `${category}-new-${name}`
        const cases: ReadonlyArray<{
          readonly streamId: string
          readonly events: Effect.Effect<ReadonlyArray<Event.EventData>>
          readonly expected: Event.ExpectedVersion
          readonly outcome: { readonly version: number } | { readonly conflict: number } | "invalid"
        }> = [
          { streamId: existing("ns"), events: Effect.all([tick]), expected: Event.NoStream, outcome: { conflict: 2 } },
          { streamId: fresh("ns"), events: Effect.all([tick]), expected: Event.NoStream, outcome: { version: 1 } },
          {
            streamId: existing("se"),
            events: Effect.all([tick]),
            expected: Event.StreamExists,
            outcome: { version: 3 }
          },
          { streamId: fresh("se"), events: Effect.all([tick]), expected: Event.StreamExists, outcome: { conflict: 0 } },
          {
            streamId: existing("ex"),
            events: Effect.all([tick, tick]),
            expected: Event.Exact(2),
            outcome: { version: 4 }
          },
          {
            streamId: existing("exBad"),
            events: Effect.all([tick]),
            expected: Event.Exact(1),
            outcome: { conflict: 2 }
          },
          { streamId: fresh("ex0"), events: Effect.all([tick]), expected: Event.Exact(0), outcome: { version: 1 } },
          { streamId: existing("any"), events: Effect.all([tick]), expected: Event.Any, outcome: { version: 3 } },
          {
            streamId: fresh("any"),
            events: Effect.all([tick, tick, tick]),
            expected: Event.Any,
            outcome: { version: 3 }
          },
          {
            streamId: existing("empty"),
            events: Effect.succeed([]),
            expected: Event.Exact(2),
            outcome: { version: 2 }
          },
          {
            streamId: existing("retry"),
            events: Effect.succeed(again(retried)),
            expected: Event.NoStream,
            outcome: { version: 2 }
          },
          {
            streamId: existing("overlap"),
            events: Effect.map(tick, (e) => [...again(overlapping.slice(1)), e]),
            expected: Event.Any,
            outcome: "invalid"
          }
        ]
        // the expected-version cases share a batch (the set-based path); the retries another, which finds
        // their ids stored and goes append by append
        const batch = (group: typeof cases) =>
          Effect.forEach(
            group,
            (c) =>
              Effect.flatMap(c.events, (events) =>
                Effect.exit(store.append(c.streamId, events, { expectedVersion: c.expected }))
              ),
            { concurrency: "unbounded" }
          )
        // (a lone append runs at once, by itself: the others queue behind it and form the batch)
        const padded = (c: (typeof cases)[number], name: string) => {
          const pad = (i: number) => ({ ...cases[1]!, streamId: fresh(`${name}-${i}`) })
          return Effect.map(batch([pad(0), c, pad(1)]), (exits) => exits[1]!)
        }
        const exits = [
          ...(yield* batch(cases.slice(0, 10))),
          yield* padded(cases[10]!, "retry"),
          yield* padded(cases[11]!, "overlap")
        ]
        for (const [i, c] of cases.entries()) {
          const exit = exits[i]!
          if (c.outcome === "invalid") {
            assert.strictEqual((yield* Effect.flip(exit))._tag, "InvalidAppend", c.streamId)
          } else if ("conflict" in c.outcome) {
            const error = yield* Effect.flip(exit)
            assert.strictEqual(error._tag, "ConcurrencyConflict", c.streamId)
            assert.strictEqual((error as EventStore.ConcurrencyConflict).actual, c.outcome.conflict, c.streamId)
          } else {
            assert.isTrue(Exit.isSuccess(exit), `${c.streamId} failed`)
            const result = yield* exit
            assert.strictEqual(result.version, c.outcome.version, c.streamId)
            assert.strictEqual(yield* store.streamVersion(c.streamId), c.outcome.version, c.streamId)
            const stored = [...(yield* Stream.runCollect(store.readStream(c.streamId)))]
            assert.deepStrictEqual(
              stored.map((e) => e.version),
              Array.from({ length: c.outcome.version }, (_, v) => v + 1),
              c.streamId
            )
            // the result names the stored events of this append
            assert.deepStrictEqual(
              result.positions,
              stored.slice(stored.length - result.positions.length).map((e) => e.position),
              c.streamId
            )
          }
        }
        // the retry wrote nothing and answered with the original positions
        const retryResult = yield* exits[10]!
        assert.deepStrictEqual(
          retryResult.positions,
          retried.map((e) => e.position)
        )
        // refused appends wrote nothing
        for (const name of ["ns", "exBad", "overlap"]) assert.strictEqual(yield* store.streamVersion(existing(name)), 2)
        assert.strictEqual(yield* store.streamVersion(fresh("se")), 0)
      })
    )

    it.effect("appends to one stream in one batch are ordered and checked against each other", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const id = `${yield* uniqueCategory}-1`
        yield* store.append(id, [yield* tick])
        const exits = yield* Effect.forEach(
          Array.from({ length: 30 }),
          () => Effect.flatMap(tick, (e) => Effect.exit(store.append(id, [e], { expectedVersion: Event.Exact(1) }))),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(exits.filter(Exit.isSuccess).length, 1)
        assert.strictEqual(yield* store.streamVersion(id), 2)
      })
    )
  })

  layer(Live, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    /** A session that hears the batch function's DEBUG1 report of the path each batch took. */
    const session = Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new pg.Client({ connectionString: `${pgUrl}?options=-c%20client_min_messages%3Ddebug1` })
        const paths: Array<string> = []
        client.on("notice", (notice) => {
          const path = /^effect-eventsourcing: batch appended (.*)$/.exec(notice.message ?? "")?.[1]
          if (path !== undefined) paths.push(path)
        })
        await client.connect()
        return { client, paths }
      }),
      ({ client }) => Effect.promise(() => client.end())
    )

    it.scoped("an append waiting for a stream's lock does not hold up the appends batched with it", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const t = yield* tables({ schema })
        const category = yield* uniqueCategory
        const locked = `${category}-locked`
        yield* store.append(locked, [yield* tick])
        // another transaction holds the stream's row, as a caller's transaction that appended to it would
        const holder = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const client = new pg.Client({ connectionString: pgUrl })
            await client.connect()
            await client.query("begin")
            await client.query(`select version from ${t.streams} where stream_id = $1 for update`, [locked])
            return client
          }),
          (client) => Effect.promise(() => client.end())
        )
        // the first append runs alone; the rest arrive during it and form one batch, the locked stream's in it
        const first = yield* Effect.fork(Effect.flatMap(tick, (e) => store.append(`${category}-first`, [e])))
        const waiting = yield* Effect.fork(Effect.flatMap(tick, (e) => store.append(locked, [e])))
        const others = yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => i),
          (i) => Effect.fork(Effect.flatMap(tick, (e) => store.append(`${category}-${i}`, [e]))),
          { concurrency: "unbounded" }
        )
        yield* Fiber.join(first)
        const done = yield* Fiber.join(Fiber.all(others)).pipe(
          Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("held up by the locked stream") })
        )
        assert.deepStrictEqual(
          done.map((r) => r.version),
          Array.from({ length: 10 }, () => 1)
        )
        assert.isNull(yield* Fiber.poll(waiting).pipe(Effect.map(Option.getOrNull)), "the locked stream's append waits")
        yield* Effect.promise(() => holder.query("commit"))
        assert.strictEqual((yield* Fiber.join(waiting)).version, 2)
      })
    )

    it.scoped(
      "the common batch takes the set-based path; a retry, a claim, a stream twice or a locked one go append by append",
      () =>
        Effect.gen(function* () {
          const { client, paths } = yield* session
          const t = yield* tables({ schema })
          const category = yield* uniqueCategory
          /** Runs the batch as the PostgreSQL append sends it; returns each outcome and the path the batch took. */
          const run = (appends: ReadonlyArray<AppendPreparation.PreparedAppend>) =>
            Effect.promise(async () => {
              paths.length = 0
              const batch = "[" + appends.map((a) => batchItemJson(a, 1000)).join(",") + "]"
              const { rows } = await client.query(`select ${t.appendBatchFunction}($1::jsonb) as result`, [batch])
              return {
                outcomes: (rows[0].result as ReadonlyArray<{ readonly outcome: string }>).map((r) => r.outcome),
                paths: [...paths]
              }
            })
          const prepare = (streamId: string, options: EventStore.AppendOptions = { expectedVersion: Event.NoStream }) =>
            Effect.flatMap(tick, (e) =>
              AppendPreparation.prepareAppend(streamId, [e], options, EventStore.defaultLimits)
            )
          const fresh = [yield* prepare(`${category}-a`), yield* prepare(`${category}-b`)]

          assert.deepStrictEqual(yield* run(fresh), { outcomes: ["ok", "ok"], paths: ["set-based"] })
          // the same events again: stored already, so the set-based try is undone and each is looked at alone
          assert.deepStrictEqual(yield* run(fresh), {
            outcomes: ["duplicates", "duplicates"],
            paths: ["append by append"]
          })
          const claim = yield* prepare(`${category}-c`, { claims: [{ constraint: `seat-${category}`, value: "1" }] })
          assert.deepStrictEqual(yield* run([claim, yield* prepare(`${category}-d`)]), {
            outcomes: ["ok", "ok"],
            paths: ["append by append"]
          })
          const twice = [yield* prepare(`${category}-e`), yield* prepare(`${category}-e`, {})]
          assert.deepStrictEqual(yield* run(twice), { outcomes: ["ok", "ok"], paths: ["append by append"] })
          // a stream whose row another transaction holds: its append is left out (busy), the others commit
          const holder = new pg.Client({ connectionString: pgUrl })
          yield* Effect.acquireRelease(
            Effect.promise(async () => {
              await holder.connect()
              await holder.query("begin")
              await holder.query(`select 1 from ${t.streams} where stream_id = $1 for update`, [`${category}-a`])
            }),
            () => Effect.promise(() => holder.end())
          )
          const locked = [yield* prepare(`${category}-a`, {}), yield* prepare(`${category}-f`)]
          assert.deepStrictEqual(yield* run(locked), { outcomes: ["busy", "ok"], paths: ["append by append"] })
          assert.deepStrictEqual(yield* run([yield* prepare(`${category}-a`, {})]), {
            outcomes: ["busy"],
            paths: ["append by append"]
          })
          // the batch's lock wait ends with the call: the session's own is untouched
          const after = yield* Effect.promise(() => client.query("show lock_timeout"))
          assert.strictEqual(after.rows[0].lock_timeout, "0")
        })
    )
  })
})
