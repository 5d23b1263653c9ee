/**
 * The JetStream event bus against the local NATS, fed by the outbox relay from a memory store: per-stream
 * order end to end, a group's members sharing its messages, redeliveries absorbed by the inbox, poison
 * messages dead-lettered with the reason, and deliveries that ran out unacknowledged (the advisory).
 */
import { randomBytes } from "node:crypto"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventBus from "../../src/EventBus.js"
import * as EventStore from "../../src/EventStore.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import * as Inbox from "../../src/Inbox.js"
import * as Nats from "../../src/nats/Nats.js"
import * as NatsEventBus from "../../src/nats/NatsEventBus.js"
import * as NatsPublisher from "../../src/nats/NatsPublisher.js"
import * as Outbox from "../../src/Outbox.js"
import * as Projection from "../../src/Projection.js"
import * as Wakeup from "../../src/Wakeup.js"
import { natsUrl } from "../support/config.js"
import { subscribeDenied, throwawayNatsWith } from "../support/servers.js"
import { uniqueCategory } from "../support/ids.js"

/**
 * A store, a relay to a fresh JetStream stream, and the bus on it; the streams are deleted afterwards. The
 * ack wait is short (1 s) for the tests of redeliveries; a test whose handlers are not idempotent takes a
 * long one, so that a loaded machine's slow ack is not redelivered.
 */
const setup = (fetchSize = 16, ackWait: Duration.DurationInput = "1 second") =>
  Effect.gen(function* () {
    const id = randomBytes(4).toString("hex")
    const stream = `EES_BUS_${id}`
    const subjectPrefix = `bus_${id}`
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const nc = await connect({ servers: natsUrl })
        const jsm = await jetstreamManager(nc)
        await jsm.streams.delete(stream).catch(() => false)
        await jsm.streams.delete(`${stream}_DEAD`).catch(() => false)
        await nc.close()
      })
    )
    const nats = Nats.layer({ servers: natsUrl })
    const stores = Layer.mergeAll(
      MemoryEventStore.layer(),
      CheckpointStore.layerMemory,
      Projection.layerRegistry,
      Inbox.layerMemory
    ).pipe(Layer.provideMerge(Wakeup.layer))
    const publisher = NatsPublisher.layer({ stream, subjectPrefix, storage: "memory" })
    const relay = Outbox.relayLayer({ pollInterval: "50 millis" }).pipe(Layer.provide(publisher))
    const bus = NatsEventBus.layer({ stream, subjectPrefix, ackWait, fetchSize })
    // the publisher creates the stream the bus reads
    const context = yield* Layer.build(
      Layer.mergeAll(relay, Layer.provide(bus, publisher)).pipe(Layer.provideMerge(stores), Layer.provideMerge(nats))
    )
    return { context, bus: Context.get(context, EventBus.EventBus), stream }
  })

const append = (streamId: string, n: number) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    Effect.flatMap(Event.make({ type: "Deposited", data: { n } }), (event) => store.append(streamId, [event]))
  )

const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(done, () => "not yet"),
    Effect.retry(Schedule.spaced("25 millis")),
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("not reached in 20 s") })
  )

const n = (message: EventBus.Message) => (message.data as { n: number }).n

describe("NatsEventBus", () => {
  it.scopedLive("delivers each stream's events in order, once per group, shared by a group's members", () =>
    Effect.gen(function* () {
      const { context, bus } = yield* setup(16, "2 minutes")
      const category = yield* uniqueCategory
      const ordered = yield* Ref.make<ReadonlyArray<EventBus.Message>>([])
      const shared = yield* Ref.make<ReadonlyArray<readonly [number, string]>>([])
      yield* bus.subscribe({
        group: "ordered",
        categories: [category],
        handle: (m) => Ref.update(ordered, (seen) => [...seen, m])
      })
      for (const member of [1, 2]) {
        yield* bus.subscribe({
          group: "shared",
          categories: [category],
          handle: (m) =>
            Effect.zipRight(
              Effect.sleep("2 millis"),
              Ref.update(shared, (seen) => [...seen, [member, m.id] as const])
            )
        })
      }
      for (let i = 0; i < 90; i++) yield* append(`${category}-${i % 3}`, i).pipe(Effect.provide(context))
      const seen = yield* waitFor(Ref.get(ordered), (s) => s.length >= 90)
      for (const stream of [0, 1, 2]) {
        assert.deepStrictEqual(
          seen.filter((m) => m.streamId === `${category}-${stream}`).map((m) => m.version),
          Array.from({ length: 30 }, (_, i) => i + 1)
        )
      }
      assert.strictEqual(seen[0]!.category, category)
      assert.strictEqual(seen[0]!.type, "Deposited")
      assert.strictEqual(seen[0]!.deliveries, 1)
      yield* waitFor(Ref.get(shared), (s) => s.length >= 90)
      yield* Effect.sleep("300 millis")
      const work = yield* Ref.get(shared)
      assert.strictEqual(work.length, 90)
      assert.strictEqual(new Set(work.map(([, id]) => id)).size, 90)
      assert.deepStrictEqual(new Set(work.map(([member]) => member)), new Set([1, 2]))
    })
  )

  it.scopedLive("a redelivered message is absorbed by the inbox; a poison one is dead-lettered with the reason", () =>
    Effect.gen(function* () {
      const { context, bus } = yield* setup()
      const category = yield* uniqueCategory
      const effects = yield* Ref.make<ReadonlyArray<number>>([])
      const deliveries = yield* Ref.make<ReadonlyArray<readonly [number, number]>>([])
      // the handler's effects commit (inbox), then the ack is lost: the first delivery of each fails after them
      const idempotent = Inbox.idempotent({
        group: "idempotent",
        categories: [category],
        handle: (m: EventBus.Message) =>
          n(m) === 1 ? Effect.fail("poison") : Ref.update(effects, (seen) => [...seen, n(m)])
      })
      yield* bus
        .subscribe({
          ...idempotent,
          maxDeliveries: 3,
          retryDelay: "50 millis",
          handle: (m) =>
            Effect.zipRight(
              Ref.update(deliveries, (seen) => [...seen, [n(m), m.deliveries] as const]),
              Effect.zipRight(idempotent.handle(m), m.deliveries === 1 ? Effect.fail("ack lost") : Effect.void)
            )
        })
        .pipe(Effect.provide(context))
      for (let i = 0; i < 3; i++) yield* append(`${category}-a`, i).pipe(Effect.provide(context))
      const letters = yield* waitFor(bus.deadLetters("idempotent"), (letters) => letters.length >= 1)
      yield* waitFor(Ref.get(effects), (seen) => seen.length >= 2)
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual([...(yield* Ref.get(effects))].sort(), [0, 2])
      const seen = yield* Ref.get(deliveries)
      assert.deepStrictEqual(
        seen.filter(([x]) => x === 0).map(([, d]) => d),
        [1, 2]
      )
      assert.deepStrictEqual(
        seen.filter(([x]) => x === 1).map(([, d]) => d),
        [1, 2, 3]
      )
      assert.strictEqual(letters.length, 1)
      assert.strictEqual(n(letters[0]!.message), 1)
      assert.strictEqual(letters[0]!.group, "idempotent")
      assert.include(letters[0]!.reason, "poison")
    })
  )

  it.scopedLive("a message whose deliveries ran out unacknowledged is dead-lettered from the advisory", () =>
    Effect.gen(function* () {
      const { context, bus, stream } = yield* setup()
      const category = yield* uniqueCategory
      const { connection } = Context.get(context, Nats.Nats)
      yield* bus.subscribe({ group: "crashing", categories: [category], handle: () => Effect.void })
      yield* append(`${category}-a`, 7).pipe(Effect.provide(context))
      const [event] = yield* Effect.flatMap(EventStore.EventStore, (store) =>
        Stream.runCollect(store.readStream(`${category}-a`))
      ).pipe(
        Effect.map((chunk) => Array.from(chunk)),
        Effect.provide(context)
      )
      // what JetStream sends when a member keeps dying with the message (measured on this server version)
      const jsm = yield* Effect.promise(() => jetstreamManager(connection))
      const info = yield* waitFor(
        Effect.promise(() => jsm.streams.info(stream)),
        (info) => info.state.messages >= 1
      )
      connection.publish(
        `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.crashing`,
        JSON.stringify({ stream, consumer: "crashing", stream_seq: info.state.last_seq, deliveries: 5 })
      )
      const letters = yield* waitFor(bus.deadLetters("crashing"), (letters) => letters.length >= 1)
      assert.strictEqual(letters[0]!.message.id, event!.eventId)
      assert.strictEqual(letters[0]!.message.deliveries, 5)
      assert.include(letters[0]!.reason, "without an acknowledgement")
    })
  )

  it.scopedLive(
    "a handler slower than the ack wait keeps its message (one delivery); a member that crashes with one is dead-lettered from JetStream's advisory",
    () =>
      Effect.gen(function* () {
        // one message per pull: nothing else waits in this member's buffer while it is busy
        const { bus, context, stream } = yield* setup(1)
        const category = yield* uniqueCategory
        const { connection } = Context.get(context, Nats.Nats)
        const seen = yield* Ref.make<ReadonlyArray<readonly [number, number]>>([])
        // ack wait 1 s (setup); the first message takes 2.5 s
        yield* bus.subscribe({
          group: "slow",
          categories: [category],
          maxDeliveries: 2,
          handle: (m) =>
            Effect.zipRight(
              Ref.update(seen, (all) => [...all, [n(m), m.deliveries] as const]),
              n(m) === 0 ? Effect.sleep("2500 millis") : Effect.void
            )
        })
        yield* append(`${category}-a`, 0).pipe(Effect.provide(context))
        yield* waitFor(Ref.get(seen), (all) => all.length >= 1)
        // meanwhile a "member" of the same group takes the next message and dies with it, twice
        yield* append(`${category}-b`, 1).pipe(Effect.provide(context))
        const consumer = yield* Effect.promise(() => jetstream(connection).consumers.get(stream, "slow"))
        for (let i = 0; i < 2; i++) {
          const stolen = yield* Effect.promise(() => consumer.next({ expires: 3000 }))
          assert.isNotNull(stolen)
        }
        const letters = yield* waitFor(bus.deadLetters("slow"), (letters) => letters.length >= 1)
        assert.strictEqual(n(letters[0]!.message), 1)
        assert.include(letters[0]!.reason, "without an acknowledgement")
        yield* Effect.sleep("1500 millis")
        assert.deepStrictEqual(yield* Ref.get(seen), [[0, 1]])
      }),
    30_000
  )

  it.scopedLive(
    "a dead letter fits in a message whatever the failure: a long reason is cut, data too large left out",
    () =>
      Effect.gen(function* () {
        const { context, bus } = yield* setup()
        const category = yield* uniqueCategory
        yield* bus.subscribe({
          group: "huge",
          categories: [category],
          maxDeliveries: 1,
          handle: () => Effect.fail("x".repeat(2_000_000))
        })
        yield* append(`${category}-small`, 1).pipe(Effect.provide(context))
        // close to NATS's 1 MiB max payload: published, but no room left for a dead letter's other fields
        const big = { n: 2, note: "y".repeat(1_040_000) }
        yield* Effect.flatMap(EventStore.EventStore, (store) =>
          Effect.flatMap(Event.make({ type: "Deposited", data: big }), (event) =>
            store.append(`${category}-big`, [event])
          )
        ).pipe(Effect.provide(context))
        const letters = yield* waitFor(bus.deadLetters("huge"), (letters) => letters.length >= 2)
        const [small, large] = [...letters]
          .sort((a, b) => a.message.streamId.localeCompare(b.message.streamId))
          .reverse()
        assert.strictEqual(n(small!.message), 1)
        assert.isBelow(small!.reason.length, 10_000)
        assert.include(small!.reason, "(cut)")
        assert.include(JSON.stringify(large!.message.data), "does not fit in a dead letter")
        assert.strictEqual(large!.message.version, 1)
      }),
    30_000
  )

  it.scopedLive("rejects a bad group name and a group whose filter changed", () =>
    Effect.gen(function* () {
      const { bus } = yield* setup()
      const bad = yield* Effect.flip(bus.subscribe({ group: "a b", handle: () => Effect.void }))
      assert.strictEqual(bad._tag, "EventBusError")
      yield* bus.subscribe({ group: "g", categories: ["One"], handle: () => Effect.void })
      const changed = yield* Effect.flip(bus.subscribe({ group: "g", categories: ["Two"], handle: () => Effect.void }))
      assert.include(changed.message, "filter")
      const none = yield* Effect.flip(bus.subscribe({ group: "h", categories: [], handle: () => Effect.void }))
      assert.include(none.message, "categories")
    })
  )

  it.scopedLive(
    "the members of a group take the same categories: in any order, but not others (one filter for all)",
    () =>
      Effect.gen(function* () {
        const { bus } = yield* setup()
        yield* bus.subscribe({ group: "several", categories: ["One", "Two"], handle: () => Effect.void })
        yield* bus.subscribe({ group: "several", categories: ["Two", "One"], handle: () => Effect.void })
        // both filter on every subject: only the recorded categories tell them apart
        const other = yield* Effect.flip(
          bus.subscribe({ group: "several", categories: ["One", "Three"], handle: () => Effect.void })
        )
        assert.strictEqual(other._tag, "EventBusError")
        assert.include(other.message, "other categories")
        const all = yield* Effect.flip(bus.subscribe({ group: "several", handle: () => Effect.void }))
        assert.include(all.message, "other categories")
      })
  )

  it.scopedLive(
    "a group whose consumer was deleted under it gets it back and goes on receiving",
    () =>
      Effect.gen(function* () {
        const { bus, context, stream } = yield* setup()
        const category = yield* uniqueCategory
        const { connection } = Context.get(context, Nats.Nats)
        const seen = yield* Ref.make<ReadonlyArray<number>>([])
        yield* bus.subscribe({
          group: "deleted",
          categories: [category],
          handle: (m) => Ref.update(seen, (all) => [...all, n(m)])
        })
        yield* append(`${category}-a`, 1).pipe(Effect.provide(context))
        yield* waitFor(Ref.get(seen), (all) => all.includes(1))
        const jsm = yield* Effect.promise(() => jetstreamManager(connection))
        yield* Effect.promise(() => jsm.consumers.delete(stream, "deleted"))
        yield* append(`${category}-a`, 2).pipe(Effect.provide(context))
        // made again from the start of the stream: the first message comes again (at least once)
        yield* waitFor(Ref.get(seen), (all) => all.includes(2))
      }),
    30_000
  )

  it.scopedLive(
    "a group refused the advisories subscription (permissions) fails to subscribe with a typed error",
    () =>
      Effect.gen(function* () {
        const server = yield* throwawayNatsWith(subscribeDenied(["$JS.EVENT.ADVISORY.>"]))
        const id = randomBytes(4).toString("hex")
        const stream = `EES_BUS_${id}`
        const subjectPrefix = `bus_${id}`
        const nats = Nats.layer({ servers: server.url })
        const context = yield* Layer.build(
          NatsEventBus.layer({ stream, subjectPrefix }).pipe(
            Layer.provide(NatsPublisher.layer({ stream, subjectPrefix })),
            Layer.provideMerge(nats)
          )
        )
        const bus = Context.get(context, EventBus.EventBus)
        const error = yield* Effect.flip(bus.subscribe({ group: "watched", handle: () => Effect.void }))
        assert.strictEqual(error._tag, "EventBusError")
        assert.include(error.message, "Permissions Violation")
      }),
    30_000
  )
})
