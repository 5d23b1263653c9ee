/**
 * The checkpoint store conformance suite must fail when a guarantee is broken. Each variant below wraps
 * a working store (memory, or SQLite for the transactional guarantees) to break exactly one guarantee,
 * the way a buggy implementation would; the suite's checks for that guarantee must catch it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as CheckpointStore from "../src/CheckpointStore.js"
import * as SqlCheckpointStore from "../src/sql/SqlCheckpointStore.js"
import { checksFor, type Guarantee } from "./suites/CheckpointStoreSuite.js"
import { sqliteMemory } from "./support/sql.js"

type Store = CheckpointStore.CheckpointStore["Type"]

interface BrokenVariant {
  readonly breaks: Guarantee
  readonly name: string
  /** Wraps the SQLite store (whose transactions roll back) instead of the memory one. */
  readonly transactional?: boolean
  readonly wrap: (store: Store) => Store
}

const keyOf = (id: CheckpointStore.ProjectionId, partition: number) => `${id.name}\u0000${id.version}\u0000${partition}`

/** Wraps a store that remembers the latest lease claimed on each partition, for variants that misuse it. */
const trackingLeases = (
  store: Store,
  wrap: (
    store: Store,
    latest: (id: CheckpointStore.ProjectionId, partition: number) => CheckpointStore.Lease | undefined
  ) => Store
): Store => {
  const leases = new Map<string, CheckpointStore.Lease>()
  const tracked: Store = {
    ...store,
    claim: (id, partition, owner, ttl) =>
      Effect.tap(store.claim(id, partition, owner, ttl), (claimed) => {
        if (Option.isSome(claimed)) leases.set(keyOf(id, partition), claimed.value.lease)
      })
  }
  return wrap(tracked, (id, partition) => leases.get(keyOf(id, partition)))
}

/** The checkpoint stored for a lease's partition. */
const storedCheckpoint = (store: Store, lease: CheckpointStore.Lease) =>
  Effect.map(store.partitions(lease.projection), (partitions) => partitions[lease.partition]!.checkpoint)

const lost = (lease: CheckpointStore.Lease) =>
  new CheckpointStore.LeaseLost({ projection: lease.projection.name, partition: lease.partition, owner: lease.owner })

/** Fails with `LeaseLost` if the lease's partition is past its expiry (whoever holds it), else runs `effect`. */
const unlessExpired = <A, E, R>(store: Store, lease: CheckpointStore.Lease, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const partitions = yield* store.partitions(lease.projection)
    return (partitions[lease.partition]?.leaseExpiresAt ?? 0) < now ? yield* lost(lease) : yield* effect
  })

/** Wraps a store with dead letters of its own, which `reset(id)` drops where `drops(letter, id)`. */
const ownDeadLetters = (
  store: Store,
  drops: (letter: CheckpointStore.DeadLetter, id: CheckpointStore.ProjectionId) => boolean
): Store => {
  let letters: ReadonlyArray<CheckpointStore.DeadLetter> = []
  return {
    ...store,
    deadLetter: (letter) =>
      Effect.sync(() => void (letters = [...letters, { ...letter, id: letters.length + 1, retryRequested: false }])),
    deadLetters: (name) => Effect.sync(() => letters.filter((letter) => letter.projection.name === name)),
    reset: (id) =>
      Effect.zipRight(
        store.reset(id),
        Effect.sync(() => void (letters = letters.filter((letter) => !drops(letter, id))))
      )
  }
}

const variants: ReadonlyArray<BrokenVariant> = [
  {
    breaks: "register",
    name: "accepts any partition count once registered",
    wrap: (store) => ({
      ...store,
      register: (id, count) => Effect.catchTag(store.register(id, count), "PartitionCountMismatch", () => Effect.void)
    })
  },
  {
    breaks: "fencing",
    name: "commits and renews on whichever lease is the partition's latest (no token check)",
    wrap: (store) =>
      trackingLeases(store, (tracked, latest) => ({
        ...tracked,
        commit: (lease, expected, next, ttl) =>
          tracked.commit(latest(lease.projection, lease.partition) ?? lease, expected, next, ttl),
        renew: (lease, ttl) => tracked.renew(latest(lease.projection, lease.partition) ?? lease, ttl)
      }))
  },
  {
    breaks: "fencing",
    name: "lets a worker take a partition whose lease is live",
    wrap: (store) =>
      trackingLeases(store, (tracked, latest) => ({
        ...tracked,
        claim: (id, partition, owner, ttl) =>
          Effect.flatMap(tracked.claim(id, partition, owner, ttl), (claimed) => {
            const held = latest(id, partition)
            return Option.isSome(claimed) || held === undefined
              ? Effect.succeed(claimed)
              : Effect.zipRight(tracked.release(held), tracked.claim(id, partition, owner, ttl))
          })
      }))
  },
  {
    breaks: "lease expiry",
    name: "never lets leases expire",
    wrap: (store) => ({
      ...store,
      claim: (id, partition, owner, ttl) => store.claim(id, partition, owner, ttl * 1000),
      renew: (lease, ttl) => store.renew(lease, ttl * 1000),
      commit: (lease, expected, next, ttl) => store.commit(lease, expected, next, ttl * 1000)
    })
  },
  {
    breaks: "lease expiry",
    name: "refuses to commit on a lease that expired, though nobody took it over",
    wrap: (store) => ({
      ...store,
      commit: (lease, expected, next, ttl) => unlessExpired(store, lease, store.commit(lease, expected, next, ttl))
    })
  },
  {
    breaks: "lease expiry",
    name: "refuses to renew a lease that expired, though nobody took it over",
    wrap: (store) => ({ ...store, renew: (lease, ttl) => unlessExpired(store, lease, store.renew(lease, ttl)) })
  },
  {
    breaks: "compare-and-set",
    name: "ignores the expected checkpoint",
    wrap: (store) => ({
      ...store,
      commit: (lease, _expected, next, ttl) =>
        Effect.flatMap(storedCheckpoint(store, lease), (stored) => store.commit(lease, stored, next, ttl))
    })
  },
  {
    breaks: "release",
    name: "never releases a lease",
    wrap: (store) => ({ ...store, release: () => Effect.void })
  },
  {
    breaks: "release",
    name: "only expires a released lease and shows it free (its holder renews and commits until someone claims)",
    wrap: (store) =>
      trackingLeases(store, (tracked, latest) => {
        const released = new Set<CheckpointStore.Lease>()
        return {
          ...tracked,
          release: (lease) =>
            tracked.renew(lease, -1_000).pipe(
              Effect.tap(() => released.add(lease)),
              Effect.catchTag("LeaseLost", () => Effect.void)
            ),
          partitions: (id) =>
            Effect.map(tracked.partitions(id), (partitions) =>
              partitions.map((p) => {
                const lease = latest(id, p.partition)
                return lease !== undefined && released.has(lease) ? { ...p, owner: Option.none() } : p
              })
            )
        }
      })
  },
  {
    breaks: "release",
    name: "releases the partition's latest lease, whichever lease it is given",
    wrap: (store) =>
      trackingLeases(store, (tracked, latest) => ({
        ...tracked,
        release: (lease) => tracked.release(latest(lease.projection, lease.partition) ?? lease)
      }))
  },
  {
    breaks: "reset",
    name: "does not reset",
    wrap: (store) => ({ ...store, reset: () => Effect.void })
  },
  {
    breaks: "reset",
    name: "forgets to record live partitions",
    wrap: (store) => ({ ...store, markLive: () => Effect.void })
  },
  {
    breaks: "reset",
    name: "marks live on whichever lease is the partition's latest (no lease check)",
    wrap: (store) =>
      trackingLeases(store, (tracked, latest) => ({
        ...tracked,
        markLive: (lease, at) => tracked.markLive(latest(lease.projection, lease.partition) ?? lease, at)
      }))
  },
  {
    breaks: "reset",
    name: "marks live whatever checkpoint is stored (no checkpoint check)",
    wrap: (store) => ({
      ...store,
      markLive: (lease, _at) =>
        Effect.flatMap(storedCheckpoint(store, lease), (stored) => store.markLive(lease, stored))
    })
  },
  {
    breaks: "reset",
    name: "keeps the dead letters of a reset projection version",
    wrap: (store) => ownDeadLetters(store, () => false)
  },
  {
    breaks: "reset",
    name: "drops the dead letters of every version of a reset projection's name",
    wrap: (store) => ownDeadLetters(store, (letter, id) => letter.projection.name === id.name)
  },
  {
    breaks: "workers",
    name: "ignores leave",
    wrap: (store) => ({ ...store, leave: () => Effect.void })
  },
  {
    breaks: "workers",
    name: "never lets workers expire",
    wrap: (store) => ({ ...store, heartbeat: (id, worker, ttl) => store.heartbeat(id, worker, ttl * 1000) })
  },
  {
    breaks: "dead letters",
    name: "lists dead letters newest first",
    wrap: (store) => ({ ...store, deadLetters: (name) => Effect.map(store.deadLetters(name), (l) => [...l].reverse()) })
  },
  {
    breaks: "dead letters",
    name: "stores dead letters' positions as doubles (loses 64-bit precision)",
    wrap: (store) => ({
      ...store,
      deadLetter: (letter) =>
        store.deadLetter({
          ...letter,
          event: { ...letter.event, position: BigInt(Number(letter.event.position)) }
        })
    })
  },
  {
    breaks: "dead letter operations",
    name: "discards every dead letter of the name",
    wrap: (store) => ({
      ...store,
      discardDeadLetter: (name, id) =>
        Effect.zipRight(
          store.discardDeadLetter(name, id),
          Effect.flatMap(store.deadLetters(name), (letters) =>
            Effect.forEach(letters, (letter) => store.discardDeadLetter(name, letter.id), { discard: true })
          )
        )
    })
  },
  {
    breaks: "dead letter operations",
    name: "takes a retry nobody asked",
    wrap: (store) => ({
      ...store,
      takeRetry: (name, id) =>
        Effect.zipRight(Effect.ignore(store.retryDeadLetter(name, id)), store.takeRetry(name, id))
    })
  },
  {
    breaks: "dead letter operations",
    name: "forgets to clear the retry of a letter that failed again",
    wrap: (store) => ({
      ...store,
      retryFailed: (name, id, error, at) =>
        Effect.zipRight(store.retryFailed(name, id, error, at), Effect.ignore(store.retryDeadLetter(name, id)))
    })
  },
  {
    breaks: "projections",
    name: "never reports a version active",
    wrap: (store) => ({
      ...store,
      projections: Effect.map(store.projections, (all) => all.map((p) => ({ ...p, active: false })))
    })
  },
  {
    breaks: "rebuild requests",
    name: "never deletes a request it hands out (every taker gets it)",
    wrap: (store) => ({
      ...store,
      takeRebuild: (id) => Effect.map(store.partitions(id), (partitions) => partitions.some((p) => p.pendingRebuild))
    })
  },
  {
    breaks: "active version",
    name: "lets an older version become active again",
    wrap: (store) => {
      const active = new Map<string, number>()
      return {
        ...store,
        activate: (id) => Effect.sync(() => void active.set(id.name, id.version)),
        activeVersion: (name) => Effect.sync(() => Option.fromNullable(active.get(name)))
      }
    }
  },
  {
    breaks: "transactions",
    name: "runs batches outside any transaction",
    transactional: true,
    wrap: (store) => ({ ...store, transaction: (effect) => effect })
  },
  {
    breaks: "transactions",
    name: "wraps a batch's own failure in a CheckpointStoreError",
    wrap: (store) => ({
      ...store,
      transaction: (effect) =>
        Effect.mapError(
          store.transaction(effect),
          (cause) => new CheckpointStore.CheckpointStoreError({ operation: "transaction", cause })
        )
    })
  },
  {
    breaks: "races",
    name: "checks the expected checkpoint, then commits in a separate step",
    wrap: (store) => ({
      ...store,
      commit: (lease, expected, next, ttl) =>
        Effect.gen(function* () {
          const stored = yield* storedCheckpoint(store, lease)
          yield* Effect.yieldNow()
          return stored.transaction === expected.transaction && stored.position === expected.position
            ? yield* store
                .commit(lease, stored, next, ttl)
                .pipe(
                  Effect.catchTag("CheckpointConflict", () =>
                    Effect.flatMap(storedCheckpoint(store, lease), (now) => store.commit(lease, now, next, ttl))
                  )
                )
            : yield* store.commit(lease, expected, next, ttl)
        })
    })
  }
]

const layerOf = (
  variant: BrokenVariant
): Layer.Layer<CheckpointStore.CheckpointStore, CheckpointStore.CheckpointStoreError> =>
  variant.transactional === true
    ? Layer.effect(CheckpointStore.CheckpointStore, Effect.map(SqlCheckpointStore.make(), variant.wrap)).pipe(
        Layer.provide(sqliteMemory)
      )
    : Layer.effect(CheckpointStore.CheckpointStore, Effect.map(CheckpointStore.makeMemory, variant.wrap))

describe("CheckpointStoreSuite", () => {
  for (const variant of variants) {
    it.live(`catches a store that ${variant.name} (guarantee ${variant.breaks})`, () =>
      Effect.gen(function* () {
        const relevant = checksFor({ transactional: variant.transactional === true }).filter(
          (check) => check.guarantee === variant.breaks
        )
        const failed: Array<string> = []
        for (const check of relevant) {
          const exit = yield* Effect.exit(
            Effect.provide(check.run, layerOf(variant)).pipe(Effect.timeout("30 seconds"))
          )
          if (Exit.isFailure(exit)) failed.push(check.name)
        }
        assert.isAbove(failed.length, 0, `no check of guarantee ${variant.breaks} failed`)
      })
    )
  }

  it.live("every guarantee has checks and a broken variant", () =>
    Effect.sync(() => {
      const guarantees = new Set(checksFor({ transactional: true }).map((check) => check.guarantee))
      assert.deepStrictEqual([...new Set(variants.map((v) => v.breaks))].sort(), [...guarantees].sort())
    })
  )
})
