/**
 * The in-process event bus behind the outbox relay: groups, members sharing a group, per-stream order,
 * retries with the delivery count, dead letters with the reason, redeliveries absorbed by the inbox,
 * and the relay parking what the broker refuses while retrying what is an outage.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../src/CheckpointStore.js"
import * as Event from "../src/Event.js"
import * as EventBus from "../src/EventBus.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Inbox from "../src/Inbox.js"
import * as Outbox from "../src/Outbox.js"
import * as Projection from "../src/Projection.js"
import * as Wakeup from "../src/Wakeup.js"
import { uniqueCategory } from "./support/ids.js"

const stores = Layer.mergeAll(
  MemoryEventStore.layer(),
  CheckpointStore.layerMemory,
  Projection.layerRegistry,
  Inbox.layerMemory,
  EventBus.layerMemory()
).pipe(Layer.provideMerge(Wakeup.layer))

const append = (streamId: string, n: number) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    Effect.flatMap(Event.make({ type: "Deposited", data: { n } }), (event) => store.append(streamId, [event]))
  )

const relay = (category: string) =>
  Layer.build(Outbox.relayLayer({ name: `relay-${category}`, categories: [category], pollInterval: "20 millis" }))

const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(done, () => "not yet"),
    Effect.retry(Schedule.spaced("10 millis")),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("not reached in 10 s") })
  )

const fast = { retryDelay: "5 millis", maxRetryDelay: "20 millis" } as const

describe("EventBus (in-process)", () => {
  it.scopedLive("every group receives each message once, in each stream's order; members share a group", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const bus = yield* EventBus.EventBus
      const audit = yield* Ref.make<ReadonlyArray<string>>([])
      const shared = yield* Ref.make<ReadonlyArray<readonly [number, string]>>([])
      yield* bus.subscribe({
        group: "audit",
        categories: [category],
        handle: (m) => Ref.update(audit, (seen) => [...seen, `${m.streamId}@${m.version}`])
      })
      for (const member of [1, 2]) {
        yield* bus.subscribe({
          group: "workers",
          categories: [category],
          handle: (m) =>
            Effect.zipRight(
              Effect.sleep("1 millis"),
              Ref.update(shared, (seen) => [...seen, [member, m.id] as const])
            )
        })
      }
      for (let i = 0; i < 60; i++) yield* append(`${category}-${i % 3}`, i)
      yield* relay(category)
      const seen = yield* waitFor(Ref.get(audit), (s) => s.length >= 60)
      for (const stream of [0, 1, 2]) {
        const versions = seen.filter((s) => s.startsWith(`${category}-${stream}@`)).map((s) => Number(s.split("@")[1]))
        assert.deepStrictEqual(
          versions,
          Array.from({ length: 20 }, (_, i) => i + 1)
        )
      }
      const work = yield* waitFor(Ref.get(shared), (s) => s.length >= 60)
      yield* Effect.sleep("100 millis")
      assert.strictEqual(new Set((yield* Ref.get(shared)).map(([, id]) => id)).size, 60)
      assert.strictEqual((yield* Ref.get(shared)).length, 60)
      assert.deepStrictEqual(new Set(work.map(([member]) => member)), new Set([1, 2]))
    }).pipe(Effect.provide(stores))
  )

  it.scopedLive("a failing message is redelivered with its delivery count, then dead-lettered with the reason", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const bus = yield* EventBus.EventBus
      const deliveries = yield* Ref.make<ReadonlyArray<readonly [number, number]>>([])
      yield* bus.subscribe({
        group: "flaky",
        categories: [category],
        maxDeliveries: 3,
        ...fast,
        handle: (m) =>
          Effect.zipRight(
            Ref.update(deliveries, (seen) => [...seen, [(m.data as { n: number }).n, m.deliveries] as const]),
            // n = 0 succeeds on its second delivery, n = 1 never does, n = 2 at once
            (m.data as { n: number }).n === 1 || ((m.data as { n: number }).n === 0 && m.deliveries < 2)
              ? Effect.fail(`cannot handle ${(m.data as { n: number }).n}`)
              : Effect.void
          )
      })
      for (let i = 0; i < 3; i++) yield* append(`${category}-a`, i)
      yield* relay(category)
      yield* waitFor(Ref.get(deliveries), (seen) => seen.some(([n]) => n === 2))
      assert.deepStrictEqual(yield* Ref.get(deliveries), [
        [0, 1],
        [0, 2],
        [1, 1],
        [1, 2],
        [1, 3],
        [2, 1]
      ])
      const letters = yield* bus.deadLetters("flaky")
      assert.strictEqual(letters.length, 1)
      assert.strictEqual((letters[0]!.message.data as { n: number }).n, 1)
      assert.strictEqual(letters[0]!.message.deliveries, 3)
      assert.include(letters[0]!.reason, "cannot handle 1")
      assert.deepStrictEqual(yield* bus.deadLetters("other"), [])
    }).pipe(Effect.provide(stores))
  )

  it.scopedLive("a redelivered message is absorbed by the inbox", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const context = yield* Layer.build(stores)
      const bus = Context.get(context, EventBus.EventBus)
      const publisher = Context.get(context, Outbox.Publisher)
      const effects = yield* Ref.make(0)
      const plain = yield* Ref.make(0)
      yield* bus
        .subscribe(
          Inbox.idempotent({
            group: "idempotent",
            categories: [category],
            handle: () => Ref.update(effects, (n) => n + 1)
          })
        )
        .pipe(Effect.provide(context))
      yield* bus.subscribe({ group: "plain", categories: [category], handle: () => Ref.update(plain, (n) => n + 1) })
      yield* append(`${category}-a`, 1).pipe(Effect.provide(context))
      const recorded = yield* readStream(`${category}-a`).pipe(Effect.provide(context))
      // the same message published twice (a relay that restarted before its checkpoint)
      yield* publisher.publish(recorded)
      yield* publisher.publish(recorded)
      assert.strictEqual(yield* Ref.get(plain), 2)
      assert.strictEqual(yield* Ref.get(effects), 1)
    })
  )

  it.scopedLive("a publish waits for the subscribed groups; a group that stops hands its messages back", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const context = yield* Layer.build(stores)
      const bus = Context.get(context, EventBus.EventBus)
      const publisher = Context.get(context, Outbox.Publisher)
      yield* append(`${category}-a`, 1).pipe(Effect.provide(context))
      const recorded = yield* readStream(`${category}-a`).pipe(Effect.provide(context))
      // no group: nothing to wait for
      yield* publisher.publish(recorded)
      const scope = yield* Scope.make()
      yield* bus.subscribe({ group: "stuck", handle: () => Effect.never }).pipe(Scope.extend(scope))
      const publishing = yield* Effect.fork(publisher.publish(recorded))
      yield* Effect.sleep("50 millis")
      assert.isNull(publishing.unsafePoll())
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(publishing.await.pipe(Effect.flatten))
      assert.strictEqual(error._tag, "PublishError")
    })
  )

  it.scopedLive("a declared group gets what was published before it joined", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const context = yield* Layer.build(
        Layer.mergeAll(
          MemoryEventStore.layer(),
          CheckpointStore.layerMemory,
          Projection.layerRegistry,
          EventBus.layerMemory({ groups: ["late"] })
        ).pipe(Layer.provideMerge(Wakeup.layer))
      )
      for (let i = 0; i < 5; i++) yield* append(`${category}-a`, i).pipe(Effect.provide(context))
      yield* relay(category).pipe(Effect.provide(context))
      yield* Effect.sleep("200 millis")
      const seen = yield* Ref.make<ReadonlyArray<number>>([])
      yield* Effect.flatMap(EventBus.EventBus, (bus) =>
        bus.subscribe({
          group: "late",
          categories: [category],
          handle: (m) => Ref.update(seen, (all) => [...all, (m.data as { n: number }).n])
        })
      ).pipe(Effect.provide(context))
      assert.deepStrictEqual(yield* waitFor(Ref.get(seen), (all) => all.length >= 5), [0, 1, 2, 3, 4])
    })
  )

  it.scopedLive("a handler that interrupts itself has failed: retried, and its member keeps going", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const bus = yield* EventBus.EventBus
      const deliveries = yield* Ref.make<ReadonlyArray<readonly [number, number]>>([])
      yield* bus.subscribe({
        group: "self-interrupting",
        categories: [category],
        ...fast,
        handle: (m) =>
          Effect.zipRight(
            Ref.update(deliveries, (all) => [...all, [(m.data as { n: number }).n, m.deliveries] as const]),
            m.deliveries === 1 ? Effect.interrupt : Effect.void
          )
      })
      for (let i = 0; i < 2; i++) yield* append(`${category}-a`, i)
      yield* relay(category)
      const seen = yield* waitFor(Ref.get(deliveries), (all) => all.length >= 4)
      assert.deepStrictEqual(seen, [
        [0, 1],
        [0, 2],
        [1, 1],
        [1, 2]
      ])
    }).pipe(Effect.provide(stores))
  )

  it.scopedLive("a member stopped mid-message hands it to the group's other member", () =>
    Effect.gen(function* () {
      const context = yield* Layer.build(stores)
      const bus = Context.get(context, EventBus.EventBus)
      const publisher = Context.get(context, Outbox.Publisher)
      const category = yield* uniqueCategory
      yield* append(`${category}-a`, 1).pipe(Effect.provide(context))
      const recorded = yield* readStream(`${category}-a`).pipe(Effect.provide(context))
      const first = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      yield* bus
        .subscribe({ group: "pair", handle: () => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never) })
        .pipe(Scope.extend(first))
      const publishing = yield* Effect.fork(publisher.publish(recorded))
      yield* Deferred.await(started)
      const handledBySecond = yield* Ref.make(0)
      yield* bus.subscribe({ group: "pair", handle: () => Ref.update(handledBySecond, (n) => n + 1) })
      yield* Scope.close(first, Exit.void)
      yield* Fiber.join(publishing)
      assert.strictEqual(yield* Ref.get(handledBySecond), 1)
    })
  )

  it.scoped("a group's members take the same categories, in any order; no category at all is refused", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus.EventBus
      const [one, two] = [yield* uniqueCategory, yield* uniqueCategory]
      yield* bus.subscribe({ group: "same-set", categories: [one, two], handle: () => Effect.void })
      yield* bus.subscribe({ group: "same-set", categories: [two, one], handle: () => Effect.void })
      const other = yield* Effect.flip(
        bus.subscribe({ group: "same-set", categories: [one], handle: () => Effect.void })
      )
      assert.include(other.message, "other categories")
      const none = yield* Effect.flip(bus.subscribe({ group: "no-set", categories: [], handle: () => Effect.void }))
      assert.include(none.message, "categories must not be empty")
    }).pipe(Effect.provide(stores))
  )

  it.scoped("rejects a group name JetStream could not use", () =>
    Effect.gen(function* () {
      const bus = yield* EventBus.EventBus
      const error = yield* Effect.flip(bus.subscribe({ group: "a.b", handle: () => Effect.void }))
      assert.strictEqual(error._tag, "EventBusError")
      assert.include(error.message, "a.b")
    }).pipe(Effect.provide(stores))
  )
})

describe("Outbox relay errors", () => {
  it.scopedLive("parks an event the broker refuses, retries an outage, and moves on", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const published = yield* Ref.make<ReadonlyArray<number>>([])
      const outages = yield* Ref.make(3)
      const publisher = Outbox.Publisher.of({
        subjectOf: (event) => event.streamId,
        publish: (events) =>
          Effect.gen(function* () {
            if ((yield* Ref.getAndUpdate(outages, (n) => n - 1)) > 0) {
              return yield* new Outbox.PublishError({ operation: "publish", detail: "no responders" })
            }
            if (events.some((e) => (e.data as { n: number }).n === 2)) {
              return yield* new Outbox.PublishError({ operation: "publish", detail: "too large", transient: false })
            }
            yield* Ref.update(published, (seen) => [...seen, ...events.map((e) => (e.data as { n: number }).n)])
            return events.map((e, i) => ({ eventId: e.eventId, sequence: i, duplicate: false }))
          })
      })
      for (let i = 0; i < 5; i++) yield* append(`${category}-a`, i)
      yield* Layer.build(
        Outbox.relayLayer({ name: `relay-${category}`, categories: [category], pollInterval: "20 millis" }).pipe(
          Layer.provide(Layer.succeed(Outbox.Publisher, publisher))
        )
      )
      yield* waitFor(Ref.get(published), (seen) => seen.includes(4))
      assert.deepStrictEqual(yield* Ref.get(published), [0, 1, 3, 4])
      const letters = yield* Projection.deadLetters(`relay-${category}`)
      assert.strictEqual(letters.length, 1)
      assert.deepStrictEqual(letters[0]!.event.data, { n: 2 })
      assert.include(letters[0]!.error, "too large")
    }).pipe(Effect.provide(stores))
  )
  it.scopedLive("a relay stalled by an outage shows the age of the oldest unpublished event", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const down = Outbox.Publisher.of({
        subjectOf: (event) => event.streamId,
        publish: () => Effect.fail(new Outbox.PublishError({ operation: "publish", detail: "no responders" }))
      })
      yield* append(`${category}-a`, 1)
      yield* Effect.sleep("600 millis")
      yield* append(`${category}-a`, 2)
      yield* Layer.build(
        Outbox.relayLayer({ name: `relay-${category}`, categories: [category], pollInterval: "20 millis" }).pipe(
          Layer.provide(Layer.succeed(Outbox.Publisher, down))
        )
      )
      const registry = yield* Projection.Registry
      const relayStatus = Effect.map(registry.statuses, (all) => all.find((s) => s.name === `relay-${category}`))
      const status = yield* waitFor(relayStatus, (s) => s?.state === "stalled")
      assert.isAtLeast(status!.lag.seconds, 0.6)
      assert.isTrue(Option.isSome(status!.owned[0]!.pendingSince))
    }).pipe(Effect.provide(stores))
  )
})

describe("Inbox (memory)", () => {
  it.live("a delivery racing another of the same message waits for its outcome", () =>
    Effect.gen(function* () {
      const inbox = yield* Inbox.Inbox
      const runs = yield* Ref.make(0)
      // the first fails after a while: the second, which waited, then runs; the third finds it done
      const first = yield* Effect.fork(
        Effect.either(inbox.once("c", "m", Effect.zipRight(Effect.sleep("50 millis"), Effect.fail("boom"))))
      )
      yield* Effect.sleep("10 millis")
      const second = yield* Effect.fork(
        inbox.once(
          "c",
          "m",
          Ref.updateAndGet(runs, (n) => n + 1)
        )
      )
      assert.isTrue(Either.isLeft(yield* Fiber.join(first)))
      assert.deepStrictEqual(yield* Fiber.join(second), Option.some(1))
      assert.deepStrictEqual(
        yield* inbox.once(
          "c",
          "m",
          Ref.updateAndGet(runs, (n) => n + 1)
        ),
        Option.none()
      )
    }).pipe(Effect.provide(Inbox.layerMemory))
  )

  it.effect("runs once per consumer and message; a failed run releases its claim", () =>
    Effect.gen(function* () {
      const inbox = yield* Inbox.Inbox
      assert.deepStrictEqual(yield* inbox.once("c", "m1", Effect.succeed(1)), Option.some(1))
      assert.deepStrictEqual(yield* inbox.once("c", "m1", Effect.succeed(2)), Option.none())
      assert.deepStrictEqual(yield* inbox.once("other", "m1", Effect.succeed(3)), Option.some(3))
      assert.strictEqual(yield* Effect.flip(inbox.once("c", "m2", Effect.fail("boom"))), "boom")
      assert.deepStrictEqual(yield* inbox.once("c", "m2", Effect.succeed(4)), Option.some(4))
      assert.strictEqual(yield* inbox.prune("0 millis"), 0)
    }).pipe(Effect.provide(Inbox.layerMemory))
  )
})

const readStream = (streamId: string) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    Effect.map(Stream.runCollect(store.readStream(streamId)), (chunk) => Array.from(chunk))
  )
