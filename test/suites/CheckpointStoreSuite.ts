/**
 * The CheckpointStore conformance suite: registration, fencing (lease tokens), lease expiry (it only
 * decides when a lease may be taken), compare-and-set commits, release, reset and live flags, workers,
 * dead letters and operators' discards and retries of them, active versions, the list of projections,
 * rebuild requests, transactions and racing workers, as a list of checks that `suite(name, layer, options)` registers against one
 * implementation. The checks are plain Effects so that `CheckpointStoreSuite.test.ts` can also run them
 * against deliberately broken stores and prove that each guarantee's checks catch its violation.
 *
 * Checks share one store per suite run: each works on projections of its own fresh name. They run with
 * the live clock (leases expire by `Clock.currentTimeMillis`): a check that needs a lease or a worker to
 * expire takes it for {@link shortTtl} and sleeps well past it; everything else uses {@link longTtl}.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import { uniqueCategory } from "../support/ids.js"

export type Guarantee =
  | "register"
  | "fencing"
  | "lease expiry"
  | "compare-and-set"
  | "release"
  | "reset"
  | "workers"
  | "dead letters"
  | "dead letter operations"
  | "active version"
  | "projections"
  | "rebuild requests"
  | "transactions"
  | "races"

export interface Check {
  readonly guarantee: Guarantee
  readonly name: string
  /** Whether the check needs a store whose `transaction` rolls back its writes on failure. */
  readonly transactional: boolean
  readonly run: Effect.Effect<void, unknown, CheckpointStore.CheckpointStore>
}

/** Options of {@link suite}. */
export interface SuiteOptions {
  /** Whether `transaction` is a real, rolled-back-on-failure transaction; default false. */
  readonly transactional: boolean
}

/** The checks that apply to a store, given whether its `transaction` rolls back. */
export const checksFor = (options: SuiteOptions): ReadonlyArray<Check> =>
  checks.filter((check) => options.transactional || !check.transactional)

/** Registers every applicable check against `layer` (one store, built once for the whole suite). */
export const suite = <E>(
  name: string,
  storeLayer: Layer.Layer<CheckpointStore.CheckpointStore, E>,
  options: SuiteOptions = { transactional: false }
): void => {
  describe(name, () => {
    layer(storeLayer, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      for (const check of checksFor(options)) {
        it.effect(`${check.guarantee}: ${check.name}`, () => check.run, 60_000)
      }
    })
  })
}

// ---------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------

const store = CheckpointStore.CheckpointStore

/** A lease time no check outlives. */
const longTtl = 60_000

/** A lease time that checks outlive on purpose, long enough for the few statements that follow a claim. */
export const shortTtl = 500

/** Sleeps comfortably past {@link shortTtl}, on the live clock. */
const pastShortTtl = Effect.sleep("800 millis")

/** A fresh projection name (so checks sharing a store never see each other's rows). */
const uniqueName = Effect.map(uniqueCategory, (suffix) => `projection_${suffix}`)

const projection = (name: string, version = 1): CheckpointStore.ProjectionId => ({ name, version })

const checkpoint = (transaction: number | bigint, position: number | bigint): Event.Checkpoint => ({
  transaction: BigInt(transaction),
  position: BigInt(position)
})

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** Claims a partition that must be claimable (the check fails otherwise). */
const mustClaim = (id: CheckpointStore.ProjectionId, partition: number, owner: string, ttl = longTtl) =>
  Effect.flatMap(store, (s) => s.claim(id, partition, owner, ttl)).pipe(
    Effect.flatMap(
      Option.match({
        onNone: () => Effect.dieMessage(`${owner} could not claim ${id.name}/${id.version} partition ${partition}`),
        onSome: Effect.succeed
      })
    )
  )

/** Asserts that `owner` cannot claim the partition now. */
const assertUnclaimable = (id: CheckpointStore.ProjectionId, partition: number, owner: string) =>
  Effect.gen(function* () {
    const claimed = yield* (yield* store).claim(id, partition, owner, longTtl)
    assert.isTrue(Option.isNone(claimed), `${owner} claimed ${id.name} partition ${partition}, held by another`)
  })

/** Runs `effect`, which must fail with a `tag` error; returns that error. */
const refused = <A, E extends { readonly _tag: string }, R, Tag extends E["_tag"]>(
  effect: Effect.Effect<A, E, R>,
  tag: Tag,
  what: string
): Effect.Effect<Extract<E, { readonly _tag: Tag }>, never, R> =>
  Effect.flip(effect).pipe(
    Effect.orElse(() => Effect.dieMessage(`${what}: succeeded, expected ${tag}`)),
    Effect.map((error) => {
      assert.strictEqual(error._tag, tag, `${what}: ${String(error)}`)
      return error as Extract<E, { readonly _tag: Tag }>
    })
  )

const partitionsOf = (id: CheckpointStore.ProjectionId) => Effect.flatMap(store, (s) => s.partitions(id))

const checkpointsOf = (id: CheckpointStore.ProjectionId) =>
  Effect.map(partitionsOf(id), (partitions) => partitions.map((p) => p.checkpoint))

const ownersOf = (id: CheckpointStore.ProjectionId) =>
  Effect.map(partitionsOf(id), (partitions) => partitions.map((p) => Option.getOrNull(p.owner)))

const liveOf = (id: CheckpointStore.ProjectionId) =>
  Effect.map(partitionsOf(id), (partitions) => partitions.map((p) => p.live))

const commit = (
  claimed: { readonly lease: CheckpointStore.Lease },
  expected: Event.Checkpoint,
  next: Event.Checkpoint,
  ttl = longTtl
) => Effect.flatMap(store, (s) => s.commit(claimed.lease, expected, next, ttl))

/** A recorded event with everything that can go wrong in storage: 64-bit positions, a date, unicode. */
const recordedEvent = (n: number) =>
  Effect.gen(function* () {
    const event = yield* Event.make({
      type: "Deposité",
      schemaVersion: 3,
      data: {
        n,
        text: `héllo wörld 世界 مرحبا 🎉👩‍👩‍👧 "quoted" \\ back\nslash\ttab`,
        nested: [1, null, true, { ключ: "значение", emoji: "🦄" }],
        big: "9007199254740993"
      },
      metadata: { correlationId: `c-${n}`, principal: "ünïcode", custom: { depth: [n] } }
    })
    return {
      ...event,
      metadata: event.metadata ?? {},
      streamId: yield* Event.streamId(`Account-ü${n}`),
      category: "Account",
      version: n + 1,
      position: 2n ** 62n + BigInt(n),
      transaction: 2n ** 40n + 7n * BigInt(n),
      recordedAt: DateTime.unsafeMake(1_700_000_000_123 + n)
    } satisfies Event.RecordedEvent
  })

const encodeEvent = Schema.encodeSync(Event.RecordedEvent)

const deadLetter = (id: CheckpointStore.ProjectionId, partition: number, n: number) =>
  Effect.map(recordedEvent(n), (event): CheckpointStore.NewDeadLetter => ({
    projection: id,
    partition,
    event,
    error: `handler failed on #${n}: «boom» 💥`,
    at: DateTime.unsafeMake(1_800_000_000_000 + n * 1_000)
  }))

/** A dead letter as comparable plain data (dates as epoch millis, the event in its encoded form). */
const comparable = (letter: CheckpointStore.NewDeadLetter) => ({
  projection: { name: letter.projection.name, version: letter.projection.version },
  partition: letter.partition,
  error: letter.error,
  at: DateTime.toEpochMillis(letter.at),
  event: encodeEvent(letter.event)
})

const assertDeadLetters = (name: string, expected: ReadonlyArray<CheckpointStore.NewDeadLetter>) =>
  Effect.gen(function* () {
    const stored = yield* (yield* store).deadLetters(name)
    assert.deepStrictEqual(stored.map(comparable), expected.map(comparable), `dead letters of ${name}`)
    for (const letter of stored) {
      assert.strictEqual(typeof letter.event.position, "bigint")
      assert.strictEqual(typeof letter.event.transaction, "bigint")
      assert.isTrue(DateTime.isDateTime(letter.event.recordedAt))
    }
  })

class Boom extends Schema.TaggedError<Boom>()("Boom", {}) {}

const check = (guarantee: Guarantee, name: string, run: Check["run"], transactional = false): Check => ({
  guarantee,
  name,
  transactional,
  run
})

// ---------------------------------------------------------------------------------------------------
// register
// ---------------------------------------------------------------------------------------------------

const register: ReadonlyArray<Check> = [
  check(
    "register",
    "creates the partitions at the start of the log, free and not live; none exist before",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      assert.deepStrictEqual(yield* s.partitions(id), [])
      assert.isTrue(Option.isNone(yield* s.claim(id, 0, "A", longTtl)), "claimed a partition before register")
      yield* s.register(id, 4)
      const partitions = yield* s.partitions(id)
      assert.deepStrictEqual(
        partitions.map((p) => p.partition),
        [0, 1, 2, 3]
      )
      for (const p of partitions) {
        assert.deepStrictEqual(p.checkpoint, Event.start)
        assert.isTrue(Option.isNone(p.owner))
        assert.isFalse(p.live)
      }
      assert.isTrue(Option.isNone(yield* s.claim(id, 4, "A", longTtl)), "claimed a partition past the count")
    })
  ),
  check(
    "register",
    "registering again with the same count keeps checkpoints, leases and live flags",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 3)
      const a = yield* mustClaim(id, 1, "A")
      yield* commit(a, Event.start, checkpoint(5, 8))
      yield* s.markLive(a.lease, checkpoint(5, 8))
      yield* s.register(id, 3)
      yield* s.register(id, 3)
      assert.deepStrictEqual(yield* checkpointsOf(id), [Event.start, checkpoint(5, 8), Event.start])
      assert.deepStrictEqual(yield* ownersOf(id), [null, "A", null])
      assert.deepStrictEqual(yield* liveOf(id), [false, true, false])
      yield* assertUnclaimable(id, 1, "B")
      yield* commit(a, checkpoint(5, 8), checkpoint(6, 9))
    })
  ),
  check(
    "register",
    "registering with fewer partitions fails with PartitionCountMismatch and changes nothing",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 3)
      const error = yield* refused(s.register(id, 2), "PartitionCountMismatch", "register with 2 of 3")
      assert.deepStrictEqual([error.projection, error.stored, error.configured], [id.name, 3, 2])
      assert.strictEqual((yield* s.partitions(id)).length, 3)
      yield* s.register(id, 3)
    })
  ),
  check(
    "register",
    "registering with more partitions fails with PartitionCountMismatch and adds none",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 3)
      const error = yield* refused(s.register(id, 5), "PartitionCountMismatch", "register with 5 of 3")
      assert.deepStrictEqual([error.projection, error.stored, error.configured], [id.name, 3, 5])
      assert.strictEqual((yield* s.partitions(id)).length, 3)
      assert.isTrue(Option.isNone(yield* s.claim(id, 3, "A", longTtl)), "claimed a partition past the count")
      yield* s.register(id, 3)
    })
  ),
  check(
    "register",
    "versions of one name are registered independently",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      yield* s.register(projection(name, 1), 2)
      yield* s.register(projection(name, 2), 5)
      assert.strictEqual((yield* s.partitions(projection(name, 1))).length, 2)
      assert.strictEqual((yield* s.partitions(projection(name, 2))).length, 5)
      const v1 = yield* mustClaim(projection(name, 1), 0, "A")
      yield* commit(v1, Event.start, checkpoint(3, 3))
      assert.deepStrictEqual((yield* checkpointsOf(projection(name, 2)))[0], Event.start)
      yield* mustClaim(projection(name, 2), 0, "B")
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// fencing
// ---------------------------------------------------------------------------------------------------

const fencing: ReadonlyArray<Check> = [
  check(
    "fencing",
    "a live lease is exclusive; re-claiming bumps the token and fences off the older one",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 2)
      const a1 = yield* mustClaim(id, 0, "A")
      assert.deepStrictEqual(a1.checkpoint, Event.start)
      assert.deepStrictEqual([a1.lease.projection, a1.lease.partition, a1.lease.owner], [id, 0, "A"])
      assert.deepStrictEqual(yield* ownersOf(id), ["A", null])
      yield* assertUnclaimable(id, 0, "B")
      yield* mustClaim(id, 1, "B")

      const a2 = yield* mustClaim(id, 0, "A")
      assert.isAbove(a2.lease.token, a1.lease.token, "a re-claim bumps the token")
      const lost = yield* refused(commit(a1, Event.start, checkpoint(1, 1)), "LeaseLost", "commit with an old token")
      assert.deepStrictEqual([lost.projection, lost.partition, lost.owner], [id.name, 0, "A"])
      yield* refused(s.renew(a1.lease, longTtl), "LeaseLost", "renew with an old token")
      assert.deepStrictEqual((yield* checkpointsOf(id))[0], Event.start)

      yield* s.renew(a2.lease, longTtl)
      yield* commit(a2, Event.start, checkpoint(1, 1))
      assert.deepStrictEqual((yield* checkpointsOf(id))[0], checkpoint(1, 1))
      yield* assertUnclaimable(id, 0, "B")
    })
  ),
  check(
    "fencing",
    "a lease is for its owner, projection version and partition only",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      yield* s.register(projection(name, 1), 2)
      yield* s.register(projection(name, 2), 2)
      const a = yield* mustClaim(projection(name, 1), 0, "A")
      const forged: ReadonlyArray<[string, CheckpointStore.Lease]> = [
        ["another owner", { ...a.lease, owner: "B" }],
        ["another partition", { ...a.lease, partition: 1 }],
        ["another version", { ...a.lease, projection: projection(name, 2) }],
        ["a later token", { ...a.lease, token: a.lease.token + 1 }]
      ]
      for (const [what, lease] of forged) {
        yield* refused(s.commit(lease, Event.start, checkpoint(9, 9), longTtl), "LeaseLost", `commit with ${what}`)
        yield* refused(s.renew(lease, longTtl), "LeaseLost", `renew with ${what}`)
        yield* s.markLive(lease, Event.start)
      }
      assert.deepStrictEqual(yield* checkpointsOf(projection(name, 1)), [Event.start, Event.start])
      assert.deepStrictEqual(yield* checkpointsOf(projection(name, 2)), [Event.start, Event.start])
      assert.deepStrictEqual(yield* liveOf(projection(name, 1)), [false, false], "marked live with a forged lease")
      assert.deepStrictEqual(yield* liveOf(projection(name, 2)), [false, false], "marked live with a forged lease")
      yield* commit(a, Event.start, checkpoint(9, 9))
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// lease expiry
// ---------------------------------------------------------------------------------------------------

const expiry: ReadonlyArray<Check> = [
  check(
    "lease expiry",
    "an expired lease is taken over, after which its holder's renew and commit fail with LeaseLost",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 1)
      const a = yield* mustClaim(id, 0, "A", shortTtl)
      yield* assertUnclaimable(id, 0, "B")
      yield* pastShortTtl
      const b = yield* mustClaim(id, 0, "B")
      assert.isAbove(b.lease.token, a.lease.token, "a take-over bumps the token")
      yield* refused(s.renew(a.lease, longTtl), "LeaseLost", "renew of a taken-over lease")
      yield* refused(commit(a, Event.start, checkpoint(1, 1)), "LeaseLost", "commit of a taken-over lease")
      assert.deepStrictEqual(yield* checkpointsOf(id), [Event.start])
      assert.deepStrictEqual(yield* ownersOf(id), ["B"])
      yield* commit(b, Event.start, checkpoint(2, 2))
      assert.deepStrictEqual(yield* checkpointsOf(id), [checkpoint(2, 2)])
      yield* assertUnclaimable(id, 0, "A")
    })
  ),
  check(
    "lease expiry",
    "renew and commit extend a lease past its first expiry",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 3)
      const [expiring, renewed, committed] = yield* Effect.all(range(3).map((p) => mustClaim(id, p, "A", shortTtl)))
      yield* s.renew(renewed!.lease, longTtl)
      yield* commit(committed!, Event.start, checkpoint(1, 1), longTtl)
      yield* pastShortTtl
      yield* mustClaim(id, 0, "B")
      yield* assertUnclaimable(id, 1, "B")
      yield* assertUnclaimable(id, 2, "B")
      yield* refused(s.renew(expiring!.lease, longTtl), "LeaseLost", "renew of a taken-over lease")
      yield* s.renew(renewed!.lease, longTtl)
      yield* commit(renewed!, Event.start, checkpoint(2, 2))
      yield* commit(committed!, checkpoint(1, 1), checkpoint(3, 3))
    })
  ),
  check(
    "lease expiry",
    "a lease that expired but was not taken over still renews, commits and marks live; a take-over then fences it off",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 2)
      const [renewing, committing] = yield* Effect.all(range(2).map((p) => mustClaim(id, p, "A", shortTtl)))
      yield* pastShortTtl

      // both leases expired, nobody claimed: A still holds them, and renewing or committing extends them
      yield* s.renew(renewing!.lease, shortTtl)
      yield* assertUnclaimable(id, 0, "B")
      yield* commit(committing!, Event.start, checkpoint(1, 1), shortTtl)
      yield* assertUnclaimable(id, 1, "B")
      yield* s.markLive(committing!.lease, checkpoint(1, 1))
      assert.deepStrictEqual(yield* checkpointsOf(id), [Event.start, checkpoint(1, 1)])
      assert.deepStrictEqual(yield* liveOf(id), [false, true])
      assert.deepStrictEqual(yield* ownersOf(id), ["A", "A"])

      // expired again, and now taken over: A is fenced off
      yield* pastShortTtl
      const [b0, b1] = yield* Effect.all(range(2).map((p) => mustClaim(id, p, "B")))
      assert.deepStrictEqual(b1!.checkpoint, checkpoint(1, 1))
      const stored = [Event.start, checkpoint(1, 1)]
      for (const [p, a] of [renewing!, committing!].entries()) {
        yield* refused(s.renew(a.lease, longTtl), "LeaseLost", `renew of taken-over partition ${p}`)
        yield* refused(commit(a, stored[p]!, checkpoint(2, 2)), "LeaseLost", `commit of taken-over partition ${p}`)
      }
      assert.deepStrictEqual(yield* checkpointsOf(id), stored)
      assert.deepStrictEqual(yield* ownersOf(id), ["B", "B"])
      yield* commit(b0!, Event.start, checkpoint(3, 3))
      yield* commit(b1!, checkpoint(1, 1), checkpoint(4, 4))
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// compare-and-set
// ---------------------------------------------------------------------------------------------------

const compareAndSet: ReadonlyArray<Check> = [
  check(
    "compare-and-set",
    "a commit from a checkpoint other than the stored one fails with CheckpointConflict and moves nothing",
    Effect.gen(function* () {
      const id = projection(yield* uniqueName)
      yield* (yield* store).register(id, 2)
      const a = yield* mustClaim(id, 1, "A")
      const conflict = yield* refused(
        commit(a, checkpoint(1, 1), checkpoint(2, 2)),
        "CheckpointConflict",
        "commit from a checkpoint ahead of the stored one"
      )
      assert.deepStrictEqual([conflict.projection, conflict.partition], [id.name, 1])
      assert.deepStrictEqual(yield* checkpointsOf(id), [Event.start, Event.start])

      yield* commit(a, Event.start, checkpoint(3, 10))
      assert.deepStrictEqual(yield* checkpointsOf(id), [Event.start, checkpoint(3, 10)])
      for (const expected of [Event.start, checkpoint(3, 9), checkpoint(2, 10), checkpoint(4, 10), checkpoint(10, 3)]) {
        yield* refused(
          commit(a, expected, checkpoint(4, 11)),
          "CheckpointConflict",
          `commit from ${expected.transaction}/${expected.position} with 3/10 stored`
        )
      }
      assert.deepStrictEqual(yield* checkpointsOf(id), [Event.start, checkpoint(3, 10)])
      yield* commit(a, checkpoint(3, 10), checkpoint(4, 11))
      assert.deepStrictEqual(yield* checkpointsOf(id), [Event.start, checkpoint(4, 11)])
    })
  ),
  check(
    "compare-and-set",
    "checkpoints past 32 bits round-trip exactly and are handed back by the next claim",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 1)
      const a = yield* mustClaim(id, 0, "A")
      const far = checkpoint(2n ** 32n + 7n, 2n ** 31n + 5n)
      yield* commit(a, Event.start, far)
      assert.deepStrictEqual(yield* checkpointsOf(id), [far])
      yield* s.release(a.lease)
      const b = yield* mustClaim(id, 0, "B")
      assert.deepStrictEqual(b.checkpoint, far)
      yield* commit(b, far, checkpoint(2n ** 33n, 2n ** 33n + 1n))
      assert.deepStrictEqual(yield* checkpointsOf(id), [checkpoint(2n ** 33n, 2n ** 33n + 1n)])
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// release
// ---------------------------------------------------------------------------------------------------

const release: ReadonlyArray<Check> = [
  check(
    "release",
    "a released partition can be claimed at once by another worker; the released lease is fenced off",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 1)
      const a = yield* mustClaim(id, 0, "A")
      yield* commit(a, Event.start, checkpoint(1, 1))
      yield* s.release(a.lease)
      assert.deepStrictEqual(yield* ownersOf(id), [null])
      // fenced off at once, before anyone claims
      yield* refused(s.renew(a.lease, longTtl), "LeaseLost", "renew of a released lease")
      yield* refused(commit(a, checkpoint(1, 1), checkpoint(2, 2)), "LeaseLost", "commit of a released lease")
      yield* s.markLive(a.lease, checkpoint(1, 1))
      assert.deepStrictEqual(yield* checkpointsOf(id), [checkpoint(1, 1)])
      assert.deepStrictEqual(yield* liveOf(id), [false], "a released lease marked live")
      assert.deepStrictEqual(yield* ownersOf(id), [null])
      const b = yield* mustClaim(id, 0, "B")
      assert.deepStrictEqual(b.checkpoint, checkpoint(1, 1))
      assert.isAbove(b.lease.token, a.lease.token)
      yield* refused(commit(a, checkpoint(1, 1), checkpoint(2, 2)), "LeaseLost", "commit of a released lease")
      yield* commit(b, checkpoint(1, 1), checkpoint(3, 3))
    })
  ),
  check(
    "release",
    "releasing a lost lease is a no-op: the current holder keeps the partition",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 2)

      // partition 0: taken over after expiry
      const a = yield* mustClaim(id, 0, "A", shortTtl)
      // partition 1: superseded by its own owner's re-claim
      const old = yield* mustClaim(id, 1, "A")
      const current = yield* mustClaim(id, 1, "A")
      yield* pastShortTtl
      const b = yield* mustClaim(id, 0, "B")

      yield* s.release(a.lease)
      yield* s.release(a.lease)
      yield* s.release(old.lease)
      assert.deepStrictEqual(yield* ownersOf(id), ["B", "A"])
      yield* assertUnclaimable(id, 0, "C")
      yield* assertUnclaimable(id, 1, "C")
      yield* commit(b, Event.start, checkpoint(1, 1))
      yield* commit(current, Event.start, checkpoint(2, 2))
      assert.deepStrictEqual(yield* checkpointsOf(id), [checkpoint(1, 1), checkpoint(2, 2)])
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// reset and live
// ---------------------------------------------------------------------------------------------------

const reset: ReadonlyArray<Check> = [
  check(
    "reset",
    "markLive sets live on its partition only",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 3)
      const a = yield* mustClaim(id, 1, "A")
      yield* s.markLive(a.lease, Event.start)
      yield* s.markLive(a.lease, Event.start)
      assert.deepStrictEqual(yield* liveOf(id), [false, true, false])
    })
  ),
  check(
    "reset",
    "markLive does nothing unless the stored checkpoint is the one given (no reset since)",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 2)
      const a0 = yield* mustClaim(id, 0, "A")
      const a1 = yield* mustClaim(id, 1, "A")
      yield* commit(a0, Event.start, checkpoint(5, 5))
      for (const at of [Event.start, checkpoint(4, 4), checkpoint(5, 4), checkpoint(5, 6), checkpoint(6, 5)]) {
        yield* s.markLive(a0.lease, at)
      }
      yield* s.markLive(a1.lease, checkpoint(5, 5))
      assert.deepStrictEqual(yield* liveOf(id), [false, false], "marked live at a checkpoint not stored")

      // a rebuild resets the partition between the holder's catching up and its markLive
      yield* s.reset(id)
      yield* s.markLive(a0.lease, checkpoint(5, 5))
      assert.deepStrictEqual(yield* liveOf(id), [false, false], "marked live at the checkpoint before a reset")
      yield* s.markLive(a0.lease, Event.start)
      assert.deepStrictEqual(yield* liveOf(id), [true, false])
    })
  ),
  check(
    "reset",
    "a lease that was taken over, superseded or released cannot mark live",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 3)
      // partition 0: taken over after expiry; partition 1: superseded by its owner's re-claim; 2: released
      const a = yield* mustClaim(id, 0, "A", shortTtl)
      const old = yield* mustClaim(id, 1, "A")
      const current = yield* mustClaim(id, 1, "A")
      const released = yield* mustClaim(id, 2, "A")
      yield* s.release(released.lease)
      yield* pastShortTtl
      const b = yield* mustClaim(id, 0, "B")
      for (const stale of [a, old, released]) yield* s.markLive(stale.lease, Event.start)
      assert.deepStrictEqual(yield* liveOf(id), [false, false, false], "a lost lease marked live")
      yield* s.markLive(b.lease, Event.start)
      yield* s.markLive(current.lease, Event.start)
      assert.deepStrictEqual(yield* liveOf(id), [true, true, false])
    })
  ),
  check(
    "reset",
    "reset moves every partition back to the start and clears live; leases stay; other projections untouched",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      const id = projection(name, 1)
      const otherVersion = projection(name, 2)
      const otherName = projection(`${name}_other`, 1)
      for (const p of [id, otherVersion, otherName]) yield* s.register(p, 3)
      const leases = yield* Effect.all(range(3).map((p) => mustClaim(id, p, "A")))
      yield* commit(leases[0]!, Event.start, checkpoint(5, 5))
      yield* commit(leases[1]!, Event.start, checkpoint(7, 9))
      yield* s.markLive(leases[0]!.lease, checkpoint(5, 5))
      yield* s.markLive(leases[2]!.lease, Event.start)
      for (const p of [otherVersion, otherName]) {
        const other = yield* mustClaim(p, 0, "A")
        yield* commit(other, Event.start, checkpoint(4, 4))
        yield* s.markLive(other.lease, checkpoint(4, 4))
      }
      assert.deepStrictEqual(yield* checkpointsOf(id), [checkpoint(5, 5), checkpoint(7, 9), Event.start])
      assert.deepStrictEqual(yield* liveOf(id), [true, false, true])

      yield* s.reset(id)
      const partitions = yield* s.partitions(id)
      assert.deepStrictEqual(
        partitions.map((p) => p.checkpoint),
        [Event.start, Event.start, Event.start]
      )
      assert.deepStrictEqual(
        partitions.map((p) => p.live),
        [false, false, false]
      )
      assert.deepStrictEqual(yield* ownersOf(id), ["A", "A", "A"])
      for (const p of [otherVersion, otherName]) {
        const [first] = yield* s.partitions(p)
        assert.deepStrictEqual([first!.checkpoint, first!.live], [checkpoint(4, 4), true], `${p.name}/${p.version}`)
      }

      // the holder's next commit from where it was is refused; from the start it goes through
      yield* refused(commit(leases[0]!, checkpoint(5, 5), checkpoint(6, 6)), "CheckpointConflict", "commit past reset")
      yield* commit(leases[0]!, Event.start, checkpoint(1, 1))
      yield* assertUnclaimable(id, 1, "B")
    })
  ),
  check(
    "reset",
    "reset drops the dead letters of its projection version only; later ones are kept",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      const id = projection(name, 1)
      const otherVersion = projection(name, 2)
      const otherName = projection(`${name}_other`, 1)
      for (const p of [id, otherVersion, otherName]) yield* s.register(p, 2)
      const dropped = yield* deadLetter(id, 0, 1)
      const keptVersion = yield* deadLetter(otherVersion, 0, 2)
      const droppedToo = yield* deadLetter(id, 1, 3)
      const keptName = yield* deadLetter(otherName, 0, 4)
      for (const letter of [dropped, keptVersion, droppedToo, keptName]) yield* s.deadLetter(letter)
      yield* assertDeadLetters(name, [dropped, keptVersion, droppedToo])

      yield* s.reset(id)
      yield* assertDeadLetters(name, [keptVersion])
      yield* assertDeadLetters(otherName.name, [keptName])
      const later = yield* deadLetter(id, 1, 5)
      yield* s.deadLetter(later)
      yield* assertDeadLetters(name, [keptVersion, later])
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// workers
// ---------------------------------------------------------------------------------------------------

const workers: ReadonlyArray<Check> = [
  check(
    "workers",
    "heartbeat counts the workers present; a repeated heartbeat counts once; leave removes one",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      const id = projection(name, 1)
      assert.strictEqual(yield* s.heartbeat(id, "A", longTtl), 1)
      assert.strictEqual(yield* s.heartbeat(id, "B", longTtl), 2)
      assert.strictEqual(yield* s.heartbeat(id, "A", longTtl), 2)
      assert.strictEqual(yield* s.heartbeat(id, "C", longTtl), 3)
      assert.strictEqual(yield* s.heartbeat(projection(name, 2), "A", longTtl), 1, "versions count apart")
      assert.strictEqual(yield* s.heartbeat(projection(`${name}_other`, 1), "A", longTtl), 1, "names count apart")
      yield* s.leave(id, "B")
      yield* s.leave(id, "nobody")
      assert.strictEqual(yield* s.heartbeat(id, "A", longTtl), 2)
      yield* s.leave(id, "C")
      assert.strictEqual(yield* s.heartbeat(id, "A", longTtl), 1)
      assert.strictEqual(yield* s.heartbeat(projection(name, 2), "B", longTtl), 2, "leave is per version")
    })
  ),
  check(
    "workers",
    "a worker that stops heartbeating is not counted after its ttl",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      assert.strictEqual(yield* s.heartbeat(id, "A", longTtl), 1)
      assert.strictEqual(yield* s.heartbeat(id, "B", shortTtl), 2)
      assert.strictEqual(yield* s.heartbeat(id, "C", shortTtl), 3)
      yield* pastShortTtl
      assert.strictEqual(yield* s.heartbeat(id, "A", longTtl), 1)
      assert.strictEqual(yield* s.heartbeat(id, "B", longTtl), 2, "a returning worker counts again")
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// dead letters
// ---------------------------------------------------------------------------------------------------

const deadLetters: ReadonlyArray<Check> = [
  check(
    "dead letters",
    "round-trip exactly (64-bit positions, dates, unicode), oldest first, by projection name",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      assert.deepStrictEqual(yield* s.deadLetters(name), [])
      const first = yield* deadLetter(projection(name, 1), 0, 1)
      const elsewhere = yield* deadLetter(projection(`${name}_other`, 1), 0, 2)
      const prefixed = yield* deadLetter(projection(`${name}x`, 1), 1, 3)
      const second = yield* deadLetter(projection(name, 2), 3, 4)
      const third = yield* deadLetter(projection(name, 1), 1, 5)
      for (const letter of [first, elsewhere, prefixed, second, third]) yield* s.deadLetter(letter)
      yield* assertDeadLetters(name, [first, second, third])
      yield* assertDeadLetters(`${name}_other`, [elsewhere])
      yield* assertDeadLetters(`${name}x`, [prefixed])
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// dead letter operations (an operator's discards and retries)
// ---------------------------------------------------------------------------------------------------

/** Stores the letters, and returns them as stored (with their ids), in the order given. */
const storeLetters = (letters: ReadonlyArray<CheckpointStore.NewDeadLetter>) =>
  Effect.gen(function* () {
    const s = yield* store
    for (const letter of letters) yield* s.deadLetter(letter)
    const stored: Array<CheckpointStore.DeadLetter> = []
    for (const letter of letters) {
      const all = yield* s.deadLetters(letter.projection.name)
      // errors are unique per letter (see `deadLetter`)
      const found = all.find((d) => d.error === letter.error)
      assert.isDefined(found, `the dead letter ${letter.error} was stored`)
      stored.push(found!)
    }
    return stored
  })

const idsOf = (name: string) =>
  Effect.map(
    Effect.flatMap(store, (s) => s.deadLetters(name)),
    (l) => l.map((d) => d.id)
  )

const deadLetterOperations: ReadonlyArray<Check> = [
  check(
    "dead letter operations",
    "each letter has an id of its own, kept across reads; discard deletes that one letter of that name only",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      const other = `${name}_other`
      const [a, b, c, d] = yield* storeLetters([
        yield* deadLetter(projection(name, 1), 0, 1),
        yield* deadLetter(projection(name, 2), 1, 2),
        yield* deadLetter(projection(other, 1), 0, 3),
        yield* deadLetter(projection(name, 1), 0, 4)
      ])
      assert.strictEqual(new Set([a!.id, b!.id, c!.id, d!.id]).size, 4, "ids are unique")
      assert.deepStrictEqual(yield* idsOf(name), [a!.id, b!.id, d!.id])
      assert.deepStrictEqual(
        (yield* s.deadLetters(name)).map((l) => l.retryRequested),
        [false, false, false]
      )
      const wrongName = yield* refused(
        s.discardDeadLetter(name, c!.id),
        "DeadLetterNotFound",
        "discard of another projection's letter"
      )
      assert.deepStrictEqual([wrongName.projection, wrongName.id], [name, c!.id])
      yield* s.discardDeadLetter(name, b!.id)
      assert.deepStrictEqual(yield* idsOf(name), [a!.id, d!.id])
      assert.deepStrictEqual(yield* idsOf(other), [c!.id])
      yield* refused(s.discardDeadLetter(name, b!.id), "DeadLetterNotFound", "discard of a discarded letter")
      yield* assertDeadLetters(name, [a!, d!])
    })
  ),
  check(
    "dead letter operations",
    "a retry asked shows, is listed for its version, is taken once; failing again, the letter keeps its id with the new error and time",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      const [v1, v2] = [projection(name, 1), projection(name, 2)]
      const [a, b, c] = yield* storeLetters([
        yield* deadLetter(v1, 0, 1),
        yield* deadLetter(v1, 1, 2),
        yield* deadLetter(v2, 0, 3)
      ])
      yield* refused(s.retryDeadLetter(name, Math.max(a!.id, b!.id, c!.id) + 1000), "DeadLetterNotFound", "retry")
      yield* refused(s.retryDeadLetter(`${name}_other`, a!.id), "DeadLetterNotFound", "retry under another name")
      assert.deepStrictEqual(yield* s.retriesRequested(v1), [])
      yield* s.retryDeadLetter(name, a!.id)
      yield* s.retryDeadLetter(name, a!.id)
      yield* s.retryDeadLetter(name, c!.id)
      assert.deepStrictEqual(
        (yield* s.deadLetters(name)).map((l) => [l.id, l.retryRequested]),
        [
          [a!.id, true],
          [b!.id, false],
          [c!.id, true]
        ]
      )
      const asked = yield* s.retriesRequested(v1)
      assert.deepStrictEqual(asked.map(comparable), [comparable(a!)])
      assert.deepStrictEqual(
        asked.map((l) => [l.id, l.retryRequested]),
        [[a!.id, true]]
      )
      assert.deepStrictEqual(
        (yield* s.retriesRequested(v2)).map((l) => l.id),
        [c!.id]
      )

      assert.isFalse(yield* s.takeRetry(name, b!.id), "took a retry nobody asked")
      assert.isFalse(yield* s.takeRetry(`${name}_other`, a!.id), "took a retry under another name")
      assert.isTrue(yield* s.transaction(s.takeRetry(name, a!.id)), "the asked retry is taken")
      assert.isFalse(yield* s.takeRetry(name, a!.id), "a retry is taken once")
      assert.deepStrictEqual(yield* idsOf(name), [b!.id, c!.id])
      assert.deepStrictEqual(yield* s.retriesRequested(v1), [])

      const at = DateTime.unsafeMake(1_900_000_000_000)
      yield* s.retryFailed(name, c!.id, "failed again «💥»", at)
      const [, again] = yield* s.deadLetters(name)
      assert.deepStrictEqual(
        [again!.id, again!.error, DateTime.toEpochMillis(again!.at), again!.retryRequested],
        [c!.id, "failed again «💥»", 1_900_000_000_000, false]
      )
      assert.deepStrictEqual(encodeEvent(again!.event), encodeEvent(c!.event))
      assert.deepStrictEqual(yield* s.retriesRequested(v2), [])
      yield* s.retryDeadLetter(name, c!.id)
      assert.deepStrictEqual(
        (yield* s.retriesRequested(v2)).map((l) => l.id),
        [c!.id],
        "a letter whose retry failed can be retried again"
      )
    })
  ),
  check(
    "dead letter operations",
    "a transaction that fails after taking a retry keeps the letter, its retry still asked",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      const [a] = yield* storeLetters([yield* deadLetter(id, 0, 1)])
      yield* s.retryDeadLetter(id.name, a!.id)
      const error = yield* Effect.flip(
        s.transaction(Effect.zipRight(s.takeRetry(id.name, a!.id), Effect.fail(new Boom())))
      )
      assert.strictEqual(error._tag, "Boom")
      assert.deepStrictEqual(
        (yield* s.retriesRequested(id)).map((l) => l.id),
        [a!.id],
        "the rolled-back take left the retry asked"
      )
      assert.isTrue(yield* s.transaction(s.takeRetry(id.name, a!.id)))
      assert.deepStrictEqual(yield* s.deadLetters(id.name), [])
    }),
    true
  ),
  check(
    "dead letter operations",
    "of workers taking one retry at once, exactly one gets it",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      for (let round = 1; round <= 5; round++) {
        const [letter] = yield* storeLetters([yield* deadLetter(id, 0, round)])
        yield* s.retryDeadLetter(id.name, letter!.id)
        const taken = yield* Effect.all(
          range(4).map(() => s.transaction(s.takeRetry(id.name, letter!.id))),
          { concurrency: 4 }
        )
        assert.strictEqual(taken.filter((t) => t).length, 1, `round ${round}: exactly one take`)
      }
      assert.deepStrictEqual(yield* s.deadLetters(id.name), [])
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// projections (an operator's list)
// ---------------------------------------------------------------------------------------------------

const projectionList: ReadonlyArray<Check> = [
  check(
    "projections",
    "lists every registered version with its partition count, whether it is active, and a pending rebuild",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      const ours = Effect.map(s.projections, (all) =>
        all.filter((p) => p.id.name === name || p.id.name.startsWith(`${name}_`))
      )
      assert.deepStrictEqual(yield* ours, [])
      yield* s.register(projection(name, 2), 5)
      yield* s.register(projection(name, 1), 3)
      yield* s.register(projection(`${name}_other`, 1), 1)
      yield* s.activate(projection(name, 1))
      // activated without partitions: not a registered projection
      yield* s.activate(projection(`${name}_ghost`, 1))
      yield* s.requestRebuild(projection(name, 2))
      assert.deepStrictEqual(yield* ours, [
        { id: projection(name, 1), partitions: 3, active: true, pendingRebuild: false },
        { id: projection(name, 2), partitions: 5, active: false, pendingRebuild: true },
        { id: projection(`${name}_other`, 1), partitions: 1, active: false, pendingRebuild: false }
      ])
      yield* s.activate(projection(name, 2))
      assert.deepStrictEqual(
        (yield* ours).map((p) => [p.id.version, p.active]),
        [
          [1, false],
          [2, true],
          [1, false]
        ]
      )
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// rebuild requests
// ---------------------------------------------------------------------------------------------------

const pendingOf = (id: CheckpointStore.ProjectionId) =>
  Effect.map(partitionsOf(id), (partitions) => partitions.map((p) => p.pendingRebuild))

const rebuildRequests: ReadonlyArray<Check> = [
  check(
    "rebuild requests",
    "refused for an unregistered version; pending until taken, once, however often asked; versions apart",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      const [v1, v2] = [projection(name, 1), projection(name, 2)]
      const error = yield* refused(s.requestRebuild(v1), "ProjectionNotFound", "request for an unregistered projection")
      assert.deepStrictEqual([error.projection, error.version], [name, 1])
      yield* s.register(v1, 3)
      yield* s.register(v2, 2)
      assert.isFalse(yield* s.takeRebuild(v1), "took a request nobody made")
      assert.deepStrictEqual(yield* pendingOf(v1), [false, false, false])
      yield* s.requestRebuild(v1)
      yield* s.requestRebuild(v1)
      assert.deepStrictEqual(yield* pendingOf(v1), [true, true, true])
      assert.deepStrictEqual(yield* pendingOf(v2), [false, false], "another version's request")
      assert.isFalse(yield* s.takeRebuild(v2), "took another version's request")
      assert.isTrue(yield* s.transaction(s.takeRebuild(v1)))
      assert.isFalse(yield* s.takeRebuild(v1), "a request asked twice is taken once")
      assert.deepStrictEqual(yield* pendingOf(v1), [false, false, false])
      // a request made after one was taken is a new one
      yield* s.requestRebuild(v1)
      assert.deepStrictEqual(yield* pendingOf(v1), [true, true, true])
      assert.isTrue(yield* s.takeRebuild(v1))
    })
  ),
  check(
    "rebuild requests",
    "a transaction that fails after taking the request leaves it pending",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 2)
      yield* s.requestRebuild(id)
      const error = yield* Effect.flip(
        s.transaction(Effect.zipRight(Effect.zipRight(s.takeRebuild(id), s.reset(id)), Effect.fail(new Boom())))
      )
      assert.strictEqual(error._tag, "Boom")
      assert.deepStrictEqual(yield* pendingOf(id), [true, true], "the rolled-back take left the request pending")
      assert.isTrue(yield* s.transaction(s.takeRebuild(id)))
    }),
    true
  ),
  check(
    "rebuild requests",
    "of workers taking one request at once, exactly one gets it",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 4)
      for (let round = 1; round <= 5; round++) {
        yield* s.requestRebuild(id)
        const taken = yield* Effect.all(
          range(4).map(() => s.transaction(Effect.zipLeft(s.takeRebuild(id), s.reset(id)))),
          { concurrency: 4 }
        )
        assert.strictEqual(taken.filter((t) => t).length, 1, `round ${round}: exactly one take`)
        assert.deepStrictEqual(yield* pendingOf(id), [false, false, false, false])
      }
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// active version
// ---------------------------------------------------------------------------------------------------

const activeVersion: ReadonlyArray<Check> = [
  check(
    "active version",
    "none at first; activate moves it forward only; names are apart",
    Effect.gen(function* () {
      const s = yield* store
      const name = yield* uniqueName
      assert.deepStrictEqual(yield* s.activeVersion(name), Option.none())
      yield* s.activate(projection(name, 1))
      assert.deepStrictEqual(yield* s.activeVersion(name), Option.some(1))
      yield* s.activate(projection(name, 2))
      assert.deepStrictEqual(yield* s.activeVersion(name), Option.some(2))
      yield* s.activate(projection(name, 1))
      assert.deepStrictEqual(yield* s.activeVersion(name), Option.some(2), "an older version never comes back")
      yield* s.activate(projection(name, 2))
      assert.deepStrictEqual(yield* s.activeVersion(name), Option.some(2))
      assert.deepStrictEqual(yield* s.activeVersion(`${name}_other`), Option.none())
      yield* s.activate(projection(`${name}_other`, 7))
      assert.deepStrictEqual(yield* s.activeVersion(name), Option.some(2))
      assert.deepStrictEqual(yield* s.activeVersion(`${name}_other`), Option.some(7))
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// transactions
// ---------------------------------------------------------------------------------------------------

const transactions: ReadonlyArray<Check> = [
  check(
    "transactions",
    "transaction returns its effect's value and fails with its effect's own error",
    Effect.gen(function* () {
      const s = yield* store
      assert.strictEqual(yield* s.transaction(Effect.succeed(42)), 42)
      const error = yield* Effect.flip(s.transaction(Effect.fail(new Boom())))
      assert.strictEqual(error._tag, "Boom")
    })
  ),
  check(
    "transactions",
    "a failed transaction rolls back its commit and dead letters; a successful one keeps both",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 1)
      const a = yield* mustClaim(id, 0, "A")
      const doomed = yield* deadLetter(id, 0, 1)
      const error = yield* Effect.flip(
        s.transaction(
          Effect.gen(function* () {
            yield* s.deadLetter(doomed)
            yield* commit(a, Event.start, checkpoint(1, 1))
            return yield* new Boom()
          })
        )
      )
      assert.strictEqual(error._tag, "Boom")
      assert.deepStrictEqual(yield* checkpointsOf(id), [Event.start], "the commit was rolled back")
      yield* assertDeadLetters(id.name, [])

      const kept = yield* deadLetter(id, 0, 2)
      const result = yield* s.transaction(
        Effect.gen(function* () {
          yield* s.deadLetter(kept)
          yield* commit(a, Event.start, checkpoint(2, 2))
          return "done"
        })
      )
      assert.strictEqual(result, "done")
      assert.deepStrictEqual(yield* checkpointsOf(id), [checkpoint(2, 2)])
      yield* assertDeadLetters(id.name, [kept])
    }),
    true
  ),
  check(
    "transactions",
    "a batch whose commit is refused (LeaseLost, CheckpointConflict) stores none of its writes",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 1)
      const stale = yield* mustClaim(id, 0, "A")
      const current = yield* mustClaim(id, 0, "A")
      const batch = (claimed: typeof stale, expected: Event.Checkpoint, n: number) =>
        Effect.flatMap(deadLetter(id, 0, n), (letter) =>
          s.transaction(Effect.zipRight(s.deadLetter(letter), commit(claimed, expected, checkpoint(n, n))))
        )
      yield* refused(batch(stale, Event.start, 1), "LeaseLost", "a batch on a stale lease")
      yield* refused(batch(current, checkpoint(7, 7), 2), "CheckpointConflict", "a batch from a wrong checkpoint")
      assert.deepStrictEqual(yield* checkpointsOf(id), [Event.start])
      yield* assertDeadLetters(id.name, [])
      yield* batch(current, Event.start, 3)
      assert.deepStrictEqual(yield* checkpointsOf(id), [checkpoint(3, 3)])
      assert.strictEqual((yield* s.deadLetters(id.name)).length, 1)
    }),
    true
  )
]

// ---------------------------------------------------------------------------------------------------
// races
// ---------------------------------------------------------------------------------------------------

/** The tag of an exit's expected failure, if it has one. */
const failureTag = (exit: Exit.Exit<unknown, { readonly _tag: string }>): string | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Option.map(Cause.failureOption(exit.cause), (e) => e._tag)) : undefined

const races: ReadonlyArray<Check> = [
  check(
    "races",
    "of two workers claiming a free partition at once, exactly one gets it",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      const partitions = 16
      yield* s.register(id, partitions)
      const winners = yield* Effect.forEach(
        range(partitions),
        (p) =>
          Effect.all([s.claim(id, p, "A", longTtl), s.claim(id, p, "B", longTtl)], { concurrency: 2 }).pipe(
            Effect.map(([a, b]) => {
              assert.isTrue(Option.isSome(a) !== Option.isSome(b), `partition ${p}: exactly one claim wins`)
              return Option.isSome(a) ? "A" : "B"
            })
          ),
        { concurrency: 8 }
      )
      assert.deepStrictEqual(yield* ownersOf(id), winners)
    })
  ),
  check(
    "races",
    "a taken-over worker racing its successor's commits from the same checkpoint never commits",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      const partitions = 12
      const rounds = 6
      yield* s.register(id, partitions)
      const a = yield* Effect.all(range(partitions).map((p) => mustClaim(id, p, "A", shortTtl)))
      yield* pastShortTtl
      const b = yield* Effect.all(range(partitions).map((p) => mustClaim(id, p, "B")))
      yield* Effect.forEach(
        range(partitions),
        (p) =>
          Effect.gen(function* () {
            let at = Event.start
            for (let round = 1; round <= rounds; round++) {
              const [fromA, fromB] = yield* Effect.all(
                [
                  Effect.exit(commit(a[p]!, at, checkpoint(round, 1000 + round))),
                  Effect.exit(commit(b[p]!, at, checkpoint(round, 2000 + round)))
                ],
                { concurrency: 2 }
              )
              assert.isFalse(Exit.isSuccess(fromA) && Exit.isSuccess(fromB), `partition ${p} round ${round}: both`)
              assert.strictEqual(failureTag(fromA), "LeaseLost", `partition ${p} round ${round}: A`)
              assert.isTrue(Exit.isSuccess(fromB), `partition ${p} round ${round}: B failed`)
              at = checkpoint(round, 2000 + round)
            }
          }),
        { concurrency: 6 }
      )
      assert.deepStrictEqual(
        yield* checkpointsOf(id),
        range(partitions).map(() => checkpoint(rounds, 2000 + rounds))
      )
    })
  ),
  check(
    "races",
    "of concurrent commits on one lease from the same checkpoint, exactly one wins",
    Effect.gen(function* () {
      const s = yield* store
      const id = projection(yield* uniqueName)
      yield* s.register(id, 1)
      const a = yield* mustClaim(id, 0, "A")
      let at = Event.start
      for (let round = 1; round <= 10; round++) {
        const exits = yield* Effect.all(
          range(4).map((i) => Effect.exit(commit(a, at, checkpoint(round, i)))),
          { concurrency: 4 }
        )
        const winners = exits.flatMap((exit, i) => (Exit.isSuccess(exit) ? [i] : []))
        assert.strictEqual(winners.length, 1, `round ${round}: exactly one commit wins`)
        for (const exit of exits) {
          if (Exit.isFailure(exit)) assert.strictEqual(failureTag(exit), "CheckpointConflict", `round ${round}`)
        }
        at = checkpoint(round, winners[0]!)
        assert.deepStrictEqual(yield* checkpointsOf(id), [at])
      }
    })
  )
]

/** Every check of the suite. */
export const checks: ReadonlyArray<Check> = [
  ...register,
  ...fencing,
  ...expiry,
  ...compareAndSet,
  ...release,
  ...reset,
  ...workers,
  ...deadLetters,
  ...deadLetterOperations,
  ...activeVersion,
  ...projectionList,
  ...rebuildRequests,
  ...transactions,
  ...races
]
