import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Batcher from "../../../src/sql/internal/batcher.js"

/** A batcher of up to 10 numbers per batch, one writer, running batches (and a lone request as one) with `run`. */
const batcher = (
  run: (items: ReadonlyArray<number>) => Effect.Effect<ReadonlyArray<Exit.Exit<number, string>>, string>
) =>
  Batcher.make<number, number, string>({
    maxBatch: 10,
    writers: 1,
    closed: () => "closed",
    run,
    runOne: (item) => Effect.flatMap(run([item]), (exits) => exits[0]!)
  })

/** A batcher whose batches wait for `gate` and record their sizes. */
const gated = (gate: Deferred.Deferred<void>, sizes: Array<number>, fail?: (n: number) => boolean) =>
  batcher((items) =>
    Effect.zipRight(
      Deferred.await(gate),
      Effect.suspend(() => {
        sizes.push(items.length)
        return fail?.(items[0]!) ? Effect.fail("batch failed") : Effect.succeed(items.map((n) => Exit.succeed(n * 2)))
      })
    )
  )

describe("sql/internal/batcher", () => {
  it.live("a lone request runs at once; requests arriving meanwhile share the next batch", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const sizes: Array<number> = []
        const submit = yield* gated(gate, sizes)
        const first = yield* Effect.fork(submit(1))
        yield* Effect.sleep("10 millis")
        const others = yield* Effect.fork(Effect.all([2, 3, 4, 5].map(submit), { concurrency: "unbounded" }))
        yield* Effect.sleep("10 millis")
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(first), 2)
        assert.deepStrictEqual(yield* Fiber.join(others), [4, 6, 8, 10])
        assert.deepStrictEqual(sizes, [1, 4])
      })
    )
  )

  it.live("after a burst has been queued and answered, a lone request again runs at once in its own fiber", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const runners: Array<FiberId.FiberId> = []
        const submit = yield* batcher((items) =>
          Effect.zipRight(
            Deferred.await(gate),
            Effect.map(Effect.fiberId, (id) => {
              runners.push(id)
              return items.map((n) => Exit.succeed(n))
            })
          )
        )
        const first = yield* Effect.fork(submit(1))
        yield* Effect.sleep("10 millis")
        const queued = yield* Effect.fork(Effect.all([2, 3].map(submit), { concurrency: "unbounded" }))
        yield* Effect.sleep("10 millis")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(first)
        yield* Fiber.join(queued)
        assert.strictEqual(runners.length, 2)
        const self = yield* Effect.fiberId
        assert.strictEqual(yield* submit(4), 4)
        assert.deepStrictEqual(runners[2], self)
      })
    )
  )

  it.live(
    "a request arriving while a writer's batch is in flight waits for the next batch, not running beside it",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const gates = new Map<number, Deferred.Deferred<void>>()
          for (const n of [1, 2, 3]) gates.set(n, yield* Deferred.make<void>())
          const log: Array<string> = []
          const submit = yield* batcher((items) =>
            Effect.sync(() => log.push(`start ${items}`)).pipe(
              Effect.zipRight(Deferred.await(gates.get(items[0]!)!)),
              Effect.map(() => {
                log.push(`end ${items}`)
                return items.map((n) => Exit.succeed(n))
              })
            )
          )
          const one = yield* Effect.fork(submit(1)) // alone: at once
          yield* Effect.sleep("10 millis")
          const two = yield* Effect.fork(submit(2)) // queued behind it, then taken by the writer
          yield* Effect.sleep("10 millis")
          yield* Deferred.succeed(gates.get(1)!, undefined)
          yield* Fiber.join(one)
          const three = yield* Effect.fork(submit(3)) // the writer's batch is still in flight
          yield* Effect.sleep("10 millis")
          yield* Deferred.succeed(gates.get(3)!, undefined)
          yield* Effect.sleep("10 millis")
          yield* Deferred.succeed(gates.get(2)!, undefined)
          yield* Fiber.join(two)
          yield* Fiber.join(three)
          assert.deepStrictEqual(log, ["start 1", "start 2", "end 1", "end 2", "start 3", "end 3"])
        })
      )
  )

  it.live("a failed batch fails each of its requests", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        yield* Deferred.succeed(gate, undefined)
        const submit = yield* gated(gate, [], (n) => n === 7)
        assert.strictEqual(yield* Effect.flip(submit(7)), "batch failed")
        assert.strictEqual(yield* submit(8), 16)
      })
    )
  )

  it.live("closing the scope answers running batches and fails queued requests instead of leaving them hanging", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const gate = yield* Deferred.make<void>()
      const submit = yield* Scope.extend(gated(gate, []), scope)
      const direct = yield* Effect.fork(submit(1))
      yield* Effect.sleep("10 millis")
      const batched = yield* Effect.fork(submit(2)) // taken by the writer, waits for the gate
      yield* Effect.sleep("10 millis")
      const queued = yield* Effect.fork(submit(3)) // the writer is busy: stays queued
      yield* Effect.sleep("10 millis")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.sleep("10 millis")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(closing)
      assert.strictEqual(yield* Fiber.join(direct), 2)
      assert.strictEqual(yield* Fiber.join(batched), 4)
      assert.strictEqual(yield* Effect.flip(Fiber.join(queued)), "closed")
    })
  )

  it.live("after the scope closed, a request fails with `closed` at once", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const gate = yield* Deferred.make<void>()
      yield* Deferred.succeed(gate, undefined)
      const submit = yield* Scope.extend(gated(gate, []), scope)
      assert.strictEqual(yield* submit(1), 2)
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Effect.exit(submit(2))
      assert.deepStrictEqual(exit, Exit.fail("closed"))
    })
  )

  it.live("a batch or a lone request whose effect throws while it is built fails alone; the writer goes on", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const submit = yield* Batcher.make<number, number, string>({
          maxBatch: 10,
          writers: 1,
          closed: () => "closed",
          // throws (as building a too long text would) instead of returning an effect, for requests of 13
          run: (items) => {
            if (items.includes(13)) throw new RangeError("Invalid string length")
            return Effect.succeed(items.map((n) => Exit.succeed(n)))
          },
          runOne: (item) => {
            if (item === 13) throw new RangeError("Invalid string length")
            return Effect.zipRight(Deferred.await(gate), Effect.succeed(item))
          }
        })
        assert.isTrue(Exit.isFailure(yield* Effect.exit(submit(13))), "a lone one")
        // one runs alone (waiting for the gate) while 13 and 14 queue up for one batch
        const alone = yield* Effect.fork(submit(1))
        yield* Effect.sleep("10 millis")
        const batch = yield* Effect.fork(
          Effect.all(
            [13, 14].map((n) => Effect.exit(submit(n))),
            { concurrency: 2 }
          )
        )
        yield* Effect.sleep("10 millis")
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(alone), 1)
        const exits = yield* Fiber.join(batch)
        assert.isTrue(exits.every(Exit.isFailure), "the batch with 13 failed")
        // both paths work still: a lone request, and a batch taken by the writer
        assert.strictEqual(yield* submit(2), 2)
        const again = yield* Effect.fork(submit(3))
        const queued = yield* Effect.fork(Effect.all([4, 5].map(submit), { concurrency: 2 }))
        assert.strictEqual(yield* Fiber.join(again), 3)
        assert.deepStrictEqual(yield* Fiber.join(queued), [4, 5])
      })
    )
  )

  it.live("with a weight, what a writer takes runs as batches within the most weight (a heavy one alone)", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const sizes: Array<ReadonlyArray<number>> = []
        const submit = yield* Batcher.make<number, number, string>({
          maxBatch: 10,
          writers: 1,
          closed: () => "closed",
          weight: (n) => n,
          maxWeight: 10,
          run: (items) =>
            Effect.sync(() => {
              sizes.push(items)
              return items.map((n) => Exit.succeed(n))
            }),
          runOne: (item) => Effect.zipRight(Deferred.await(gate), Effect.succeed(item))
        })
        const alone = yield* Effect.fork(submit(1))
        yield* Effect.sleep("10 millis")
        const queued = yield* Effect.fork(Effect.all([4, 5, 2, 30, 3].map(submit), { concurrency: "unbounded" }))
        yield* Effect.sleep("10 millis")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(alone)
        assert.deepStrictEqual(yield* Fiber.join(queued), [4, 5, 2, 30, 3])
        assert.deepStrictEqual(sizes, [[4, 5], [2], [30], [3]])
      })
    )
  )

  describe("gathering (SQLite's synchronous driver)", () => {
    /** A batch as it ran: its requests and the fiber that ran it. */
    interface Ran {
      readonly items: ReadonlyArray<number>
      readonly fiber: FiberId.FiberId
    }

    /**
     * A gathering batcher of up to 4 per batch. Each batch says it started on `started`, waits for the gate of
     * its first request (open unless one is given), then records itself in `ran`.
     */
    const gathering = (
      started: Queue.Queue<ReadonlyArray<number>>,
      ran: Array<Ran>,
      gates: ReadonlyMap<number, Deferred.Deferred<void>> = new Map()
    ) =>
      Batcher.make<number, number, string>({
        maxBatch: 4,
        writers: 1,
        gather: true,
        closed: () => "closed",
        run: (items) =>
          Effect.gen(function* () {
            yield* Queue.offer(started, items)
            const gate = gates.get(items[0]!)
            if (gate !== undefined) yield* Deferred.await(gate)
            ran.push({ items, fiber: yield* Effect.fiberId })
            return items.map((n) => Exit.succeed(n * 2))
          })
      })

    /** Until `fiber` waits on something (it has run up to its first wait). */
    const waiting = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
      Effect.repeat(Effect.zipRight(Effect.yieldNow(), Fiber.status(fiber)), {
        until: (status) => status._tag === "Suspended"
      })

    it.live("requests ready together join the first one's batches, run in its caller's fiber", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const ran: Array<Ran> = []
          const submit = yield* gathering(yield* Queue.unbounded<ReadonlyArray<number>>(), ran)
          const answers = yield* Effect.all(
            [1, 2, 3, 4, 5, 6].map((n) => Effect.zip(Effect.fiberId, submit(n))),
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual(
            answers.map(([, answer]) => answer),
            [2, 4, 6, 8, 10, 12]
          )
          // one caller ran every batch, its own request first; none went to the writer fiber
          assert.deepStrictEqual(
            ran.map((r) => r.items.length),
            [4, 2]
          )
          const [gatherer] = answers.find(([, answer]) => answer === ran[0]!.items[0]! * 2)!
          for (const r of ran) assert.deepStrictEqual(r.fiber, gatherer)
          assert.deepStrictEqual([...ran.flatMap((r) => r.items)].sort(), [1, 2, 3, 4, 5, 6])
        })
      )
    )

    it.live("requests arriving while a gathering caller's batch waits go to the writer, after that batch", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const gates = new Map([
            [1, yield* Deferred.make<void>()],
            [2, yield* Deferred.make<void>()]
          ])
          const started = yield* Queue.unbounded<ReadonlyArray<number>>()
          const ran: Array<Ran> = []
          const submit = yield* gathering(started, ran, gates)
          const first = yield* Effect.fork(submit(1))
          assert.deepStrictEqual(yield* Queue.take(started), [1])
          const later = yield* Effect.fork(Effect.all([submit(2), submit(3)], { concurrency: "unbounded" }))
          yield* waiting(later)
          // 2 and 3 wait for the batch of 1 to end: none runs beside it (a writer given them would have
          // started by the time every fiber ready has had a few turns)
          yield* Effect.repeatN(Effect.yieldNow(), 10)
          assert.strictEqual(yield* Queue.size(started), 0)
          yield* Deferred.succeed(gates.get(1)!, undefined)
          assert.strictEqual(yield* Fiber.join(first), 2)
          assert.deepStrictEqual(yield* Queue.take(started), [2, 3])
          yield* Deferred.succeed(gates.get(2)!, undefined)
          assert.deepStrictEqual(yield* Fiber.join(later), [4, 6])
          assert.deepStrictEqual(
            ran.map((r) => r.items),
            [[1], [2, 3]]
          )
          assert.notDeepEqual(ran[1]!.fiber, ran[0]!.fiber, "the writer ran the later batch")
          // idle again: a lone request gathers in its own fiber
          const self = yield* Effect.fiberId
          assert.strictEqual(yield* submit(4), 8)
          assert.deepStrictEqual(ran[2]!.fiber, self)
        })
      )
    )

    it.live("closing the scope waits for a gathering caller's batch; requests that joined it late fail", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const gate = yield* Deferred.make<void>()
        const started = yield* Queue.unbounded<ReadonlyArray<number>>()
        const submit = yield* Scope.extend(gathering(started, [], new Map([[1, gate]])), scope)
        const first = yield* Effect.fork(submit(1))
        yield* Queue.take(started)
        const late = yield* Effect.fork(submit(2))
        yield* waiting(late)
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* waiting(closing)
        assert.isTrue(Option.isNone(yield* Fiber.poll(closing)), "the close waits for the batch")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(closing)
        assert.strictEqual(yield* Fiber.join(first), 2)
        assert.strictEqual(yield* Effect.flip(Fiber.join(late)), "closed")
        assert.strictEqual(yield* Effect.flip(submit(3)), "closed")
      })
    )

    it.live("a gathering caller interrupted while its batch runs still answers the requests that joined it", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const gate = yield* Deferred.make<void>()
          const started = yield* Queue.unbounded<ReadonlyArray<number>>()
          const submit = yield* gathering(started, [], new Map([[1, gate]]))
          const first = yield* Effect.fork(submit(1))
          const joined = yield* Effect.fork(submit(2))
          assert.deepStrictEqual(yield* Queue.take(started), [1, 2])
          yield* Fiber.interruptFork(first)
          yield* Deferred.succeed(gate, undefined)
          assert.strictEqual(yield* Fiber.join(joined), 4)
          yield* Fiber.await(first)
        })
      )
    )
  })
})
