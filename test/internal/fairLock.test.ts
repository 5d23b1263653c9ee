import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as FairLock from "../../src/internal/fairLock.js"

describe("internal/fairLock", () => {
  it.effect("waiters get the lock in the order they asked, ahead of a holder that asks again", () =>
    Effect.gen(function* () {
      const lock = yield* FairLock.make
      const gate = yield* Deferred.make<void>()
      const order: Array<string> = []
      const holder = yield* Effect.fork(
        Effect.gen(function* () {
          yield* lock.withLock(
            Effect.zipRight(
              Deferred.await(gate),
              Effect.sync(() => order.push("holder"))
            )
          )
          // asks again at once: the waiters queued meanwhile go first
          yield* lock.withLock(Effect.sync(() => order.push("holder again")))
        })
      )
      yield* Effect.yieldNow()
      const waiters = yield* Effect.forEach(["a", "b", "c"], (name) =>
        Effect.zipLeft(Effect.fork(lock.withLock(Effect.sync(() => order.push(name)))), Effect.yieldNow())
      )
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Effect.forEach(waiters, Fiber.join)
      assert.deepStrictEqual(order, ["holder", "a", "b", "c", "holder again"])
    })
  )

  it.effect("an interrupted waiter leaves the queue; the lock goes to the next one", () =>
    Effect.gen(function* () {
      const lock = yield* FairLock.make
      const gate = yield* Deferred.make<void>()
      const order: Array<string> = []
      const holder = yield* Effect.fork(lock.withLock(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const quitter = yield* Effect.fork(lock.withLock(Effect.sync(() => order.push("quitter"))))
      yield* Effect.yieldNow()
      const next = yield* Effect.fork(lock.withLock(Effect.sync(() => order.push("next"))))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(quitter)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(next)
      assert.deepStrictEqual(order, ["next"])
      // and the lock is free again
      assert.strictEqual(yield* lock.withLock(Effect.succeed("free")), "free")
    })
  )

  it.live("a waiter interrupted at any point of taking the lock never keeps it", () =>
    Effect.gen(function* () {
      const burn = (n: number): Effect.Effect<void> =>
        n === 0 ? Effect.void : Effect.flatMap(Effect.void, () => burn(n - 1))
      for (const maxOps of [10, 16, 25, 40]) {
        for (let yields = 0; yields < 12; yields++) {
          const lock = yield* FairLock.make
          const gate = yield* Deferred.make<void>()
          const holder = yield* Effect.fork(lock.withLock(Deferred.await(gate)))
          yield* Effect.yieldNow()
          // small yield budgets (not below 10: the runtime cannot make progress then) put the waiter's yields (where an interruption lands) all through taking the lock
          const waiter = yield* Effect.fork(
            Effect.zipRight(burn(maxOps), lock.withLock(Effect.void)).pipe(Effect.withMaxOpsBeforeYield(maxOps))
          )
          for (let i = 0; i < yields; i++) yield* Effect.yieldNow()
          yield* Fiber.interrupt(waiter)
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.join(holder)
          const free = yield* lock
            .withLock(Effect.succeed(true))
            .pipe(Effect.timeoutTo({ duration: "1 second", onTimeout: () => false, onSuccess: (x) => x }))
          assert.isTrue(free, `lock kept (max ops ${maxOps}, ${yields} yields)`)
        }
      }
    })
  )

  it.effect("a failing or interrupted holder releases the lock", () =>
    Effect.gen(function* () {
      const lock = yield* FairLock.make
      const failed = yield* Effect.flip(lock.withLock(Effect.fail("boom")))
      assert.strictEqual(failed, "boom")
      const stuck = yield* Effect.fork(lock.withLock(Effect.never))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(stuck)
      assert.strictEqual(yield* lock.withLock(Effect.succeed("free")), "free")
      yield* Effect.scoped(lock.take)
      assert.strictEqual(yield* lock.withLock(Effect.succeed("free again")), "free again")
    })
  )

  it.effect("a waiter out of patience runs without the lock and leaves the line; the lock stays consistent", () =>
    Effect.gen(function* () {
      const lock = yield* FairLock.make
      const gate = yield* Deferred.make<void>()
      const order: Array<string> = []
      const holder = yield* Effect.fork(lock.withLock(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const impatient = yield* Effect.fork(lock.withLockWithin("1 second")(Effect.sync(() => order.push("impatient"))))
      yield* Effect.yieldNow()
      assert.deepStrictEqual(order, [])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(impatient)
      assert.deepStrictEqual(order, ["impatient"])
      assert.isFalse(lock.isIdle())
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.isTrue(lock.isIdle())
      // a patient waiter gets the lock in time and holds it while it runs
      const held = yield* lock.withLockWithin("1 second")(Effect.sync(() => !lock.isIdle()))
      assert.isTrue(held)
    })
  )
})
