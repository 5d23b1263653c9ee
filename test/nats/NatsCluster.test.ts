/**
 * The NATS services on a throwaway three-node JetStream cluster (streams with 3 replicas) while one node
 * at a time, the stream leader among them, is killed (SIGKILL) and restarted: the outbox relay publishes
 * every event exactly once by message id, an idempotent event-bus group handles each exactly once, and
 * commands are answered or fail typed, never hang.
 */
import { randomBytes } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as CommandBus from "../../src/CommandBus.js"
import * as Event from "../../src/Event.js"
import * as EventBus from "../../src/EventBus.js"
import * as EventStore from "../../src/EventStore.js"
import * as Inbox from "../../src/Inbox.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import * as Nats from "../../src/nats/Nats.js"
import * as NatsCommandTransport from "../../src/nats/NatsCommandTransport.js"
import * as NatsEventBus from "../../src/nats/NatsEventBus.js"
import * as NatsPublisher from "../../src/nats/NatsPublisher.js"
import * as Outbox from "../../src/Outbox.js"
import * as Projection from "../../src/Projection.js"
import * as Wakeup from "../../src/Wakeup.js"
import { Probe, probeHandlers, Probes } from "../support/commands.js"
import { uniqueCategory } from "../support/ids.js"
import { connectedTo, type ThrowawayCluster, throwawayNatsCluster } from "../support/natsCluster.js"

/** Waits (on the live clock) until `done` holds of `effect`'s value, up to `seconds`. */
const waitFor = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, done: (a: A) => boolean, seconds = 90) =>
  effect.pipe(
    Effect.filterOrFail(done, () => "not yet"),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeoutFail({
      duration: `${seconds} seconds`,
      onTimeout: () => new Error(`${what}: not within ${seconds} s`)
    })
  )

/** Kills `name`, runs `whileDown`, starts it again and waits for the stream to be whole again. */
const outage = <A, E, R>(cluster: ThrowawayCluster, stream: string, name: string, whileDown: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const node = cluster.node(name)
    yield* node.kill
    const result = yield* whileDown
    yield* node.start
    yield* cluster.awaitStream(stream)
    return result
  })

describe("NATS JetStream cluster (3 nodes, R3)", () => {
  it.scopedLive(
    "relay and idempotent bus group: each event stored once and handled once while nodes, the leader among them, die",
    () =>
      Effect.gen(function* () {
        const cluster = yield* throwawayNatsCluster()
        const id = randomBytes(4).toString("hex")
        const stream = `EES_CLUSTER_${id}`
        const subjectPrefix = `cluster_${id}`
        const category = yield* uniqueCategory
        const stores = Layer.mergeAll(
          MemoryEventStore.layer(),
          CheckpointStore.layerMemory,
          Projection.layerRegistry,
          Inbox.layerMemory
        ).pipe(Layer.provideMerge(Wakeup.layer))
        const relayNats = yield* Layer.build(Nats.layer({ servers: cluster.urls, name: "relay" }))
        // the publisher, counting the events JetStream acked as duplicates (stored by a publish whose ack was lost)
        const duplicates = yield* Ref.make(0)
        const publisher = Layer.effect(
          Outbox.Publisher,
          Effect.map(Outbox.Publisher, (inner) =>
            Outbox.Publisher.of({
              subjectOf: inner.subjectOf,
              publish: (events) =>
                Effect.tap(inner.publish(events), (acks) =>
                  Ref.update(duplicates, (n) => n + acks.filter((ack) => ack.duplicate).length)
                )
            })
          )
        ).pipe(
          Layer.provide(NatsPublisher.layer({ stream, subjectPrefix, replicas: 3, timeout: "2 seconds" })),
          Layer.provide(Layer.succeedContext(relayNats))
        )
        const relay = Outbox.relayLayer({ pollInterval: "50 millis" }).pipe(Layer.provide(publisher))
        const bus = NatsEventBus.layer({ stream, subjectPrefix, ackWait: "5 seconds", replicas: 3 }).pipe(
          Layer.provideMerge(Nats.layer({ servers: cluster.urls, name: "bus" }))
        )
        // the publisher makes the stream the bus reads
        const context = yield* Layer.build(Layer.provideMerge(relay, stores))
        yield* cluster.awaitStream(stream)
        const busContext = yield* Layer.build(bus)
        const eventBus = Context.get(busContext, EventBus.EventBus)

        // each event's runs of the idempotent handler, and its deliveries (redeliveries included)
        const handled = new Map<string, number>()
        const delivered = new Map<string, number>()
        const count = (counts: Map<string, number>, key: string) => counts.set(key, (counts.get(key) ?? 0) + 1)
        const idempotent = Inbox.idempotent({
          group: "counted",
          categories: [category],
          handle: (message) => Effect.sync(() => void count(handled, message.id))
        })
        // while a gate is set, deliveries wait at it before the handler (and so before their ack)
        const held = yield* Ref.make(0)
        let gate: Deferred.Deferred<void> | undefined
        const hold = Effect.suspend(() =>
          gate === undefined
            ? Effect.void
            : Effect.zipRight(
                Ref.update(held, (n) => n + 1),
                Deferred.await(gate)
              )
        )
        // two members share the group; deliveries are counted before the inbox sees them
        for (const _ of [1, 2]) {
          yield* eventBus
            .subscribe({
              ...idempotent,
              handle: (message) =>
                Effect.zipRight(
                  Effect.sync(() => void count(delivered, message.id)),
                  Effect.zipRight(hold, idempotent.handle(message))
                )
            })
            .pipe(Effect.provide(context))
        }

        // the application appends, keeping at most 50 events ahead of the group (bounded: the phases below
        // need some 200 events), until told to stop
        const appended = yield* Ref.make(0)
        const stop = yield* Deferred.make<void>()
        const appender = yield* Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          for (let i = 0; i < 3000 && !(yield* Deferred.isDone(stop)); i++) {
            while (i - handled.size >= 50 && !(yield* Deferred.isDone(stop))) yield* Effect.sleep("50 millis")
            const event = yield* Event.make({ type: "Deposited", data: { n: i } })
            yield* store.append(`${category}-${i % 7}`, [event])
            yield* Ref.update(appended, (n) => n + 1)
            yield* Effect.sleep("10 millis")
          }
        }).pipe(Effect.provide(context), Effect.fork)
        const handledCount = Effect.sync(() => handled.size)
        const progressBy = (what: string, more: number) =>
          Effect.flatMap(handledCount, (before) => waitFor(what, handledCount, (n) => n >= before + more))

        yield* progressBy("handled before the faults", 30)
        // 1. the stream leader dies: a follower takes over, the relay and the group carry on
        const leader = yield* cluster.awaitStream(stream)
        yield* outage(cluster, stream, leader, progressBy(`handled with the leader ${leader} down`, 30))
        // 2. the node the bus's connection is on dies (a follower if it is the new leader)
        const newLeader = yield* cluster.awaitStream(stream)
        // 2. the node the relay's connection is on dies (a follower if it is the new leader): acks on their way
        // back through it are lost, and the relay publishes those events again
        const relayNode = connectedTo(Context.get(relayNats, Nats.Nats).connection)
        const victim =
          relayNode !== undefined && relayNode !== newLeader
            ? relayNode
            : cluster.nodes.find((node) => node.name !== newLeader)!.name
        yield* outage(cluster, stream, victim, progressBy(`handled with ${victim} down`, 30))
        // 3. the group's consumer leader dies with deliveries in hand: their acks, sent after it died, are
        // likely lost, and the messages redelivered (after the ack wait) to the idempotent group
        const consumerLeader = yield* waitFor(
          "the group's consumer has a leader",
          cluster.consumerLeader(stream, "counted"),
          (name) => name !== undefined
        )
        const opened = yield* Deferred.make<void>()
        gate = opened
        yield* waitFor("a delivery in hand", Ref.get(held), (n) => n >= 1)
        yield* outage(
          cluster,
          stream,
          consumerLeader!,
          Effect.zipRight(
            Effect.sync(() => (gate = undefined)).pipe(Effect.zipRight(Deferred.succeed(opened, undefined))),
            progressBy(`handled with ${consumerLeader} down`, 30)
          )
        )
        yield* progressBy("handled after the faults", 30)

        yield* Deferred.succeed(stop, undefined)
        yield* Fiber.join(appender)
        const total = yield* Ref.get(appended)
        const events = yield* EventStore.EventStore.pipe(
          Effect.flatMap((store) => Stream.runCollect(store.readAll())),
          Effect.map(Chunk.toReadonlyArray),
          Effect.provide(context)
        )
        const ids = events.filter((e) => e.category === category).map((e) => e.eventId)
        assert.strictEqual(ids.length, total)
        yield* waitFor("every event handled", handledCount, (n) => n >= total)

        // JetStream's view, from the stream leader: every event stored once under its id. Its API answers
        // "temporarily unavailable" for a while after a restart (under load, past 10 s): first wait until the
        // cluster places a stream again, then retry each request for up to a minute
        yield* cluster.awaitAll()
        const jsm = cluster.manager
        const info = yield* waitFor(
          "every event in the stream",
          Effect.tryPromise(() => jsm.streams.info(stream)),
          (i) => i.state.messages >= total
        )
        const stored: Array<string> = []
        for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
          const msg = yield* Effect.tryPromise(() => jsm.streams.getMessage(stream, { seq })).pipe(
            Effect.retry(Schedule.spaced("200 millis")),
            Effect.timeoutFail({
              duration: "60 seconds",
              onTimeout: () => new Error(`message ${seq} of ${stream}: JetStream did not answer within 60 s`)
            })
          )
          if (msg !== null) stored.push(msg.header.get("Nats-Msg-Id"))
        }
        assert.strictEqual(stored.length, total, "the stream holds one message per event")
        assert.deepStrictEqual(new Set(stored), new Set(ids))
        // nothing left to redeliver, then: each event handled exactly once
        yield* waitFor(
          "the group's consumer settled",
          Effect.tryPromise(() => jsm.consumers.info(stream, "counted")),
          (c) => c.num_pending === 0 && c.num_ack_pending === 0
        )
        assert.deepStrictEqual(new Set(handled.keys()), new Set(ids))
        assert.deepStrictEqual(
          [...handled.entries()].filter(([, runs]) => runs !== 1),
          [],
          "no event handled twice"
        )
        const redelivered = [...delivered.values()].reduce((sum, n) => sum + n, 0) - total
        yield* Effect.log(
          `cluster: ${total} events, ${yield* Ref.get(duplicates)} duplicate publishes dropped by JetStream, ` +
            `${redelivered} redeliveries absorbed by the inbox`
        )
      }),
    300_000
  )

  it.scopedLive(
    "commands are answered, or fail typed and promptly, while the client's and a server's nodes die",
    () =>
      Effect.gen(function* () {
        const cluster = yield* throwawayNatsCluster()
        const subjectPrefix = `commands_${randomBytes(4).toString("hex")}`
        const serverOf = (name: string) =>
          NatsCommandTransport.serve({ subjectPrefix }).pipe(
            Layer.provide(
              CommandBus.layer({ groups: [Probes], retry: Schedule.recurs(0) }).pipe(
                Layer.provide(probeHandlers((n) => Effect.succeed(`${name}:${n}`))),
                Layer.provide(MemoryEventStore.layer())
              )
            ),
            Layer.provideMerge(Nats.layer({ servers: cluster.urls, name }))
          )
        const servers = yield* Effect.forEach(["a", "b"], (name) =>
          Effect.map(Layer.build(serverOf(name)), (context) => Context.get(context, Nats.Nats))
        )
        const client = yield* Layer.build(
          NatsCommandTransport.layerClient({ groups: [Probes], subjectPrefix, timeout: "3 seconds" }).pipe(
            Layer.provideMerge(Nats.layer({ servers: cluster.urls, name: "client" }))
          )
        )
        const bus = Context.get(client, CommandBus.CommandBus)

        // dispatchers: every outcome is a result, a typed bus error, or (a failure of the test) a hang/defect
        const answered = yield* Ref.make(0)
        const typed = yield* Ref.make<ReadonlyArray<string>>([])
        const broken = yield* Ref.make<ReadonlyArray<string>>([])
        const stop = yield* Deferred.make<void>()
        const dispatcher = (worker: number) =>
          Effect.gen(function* () {
            for (let i = 0; !(yield* Deferred.isDone(stop)); i++) {
              const exit = yield* bus
                .dispatch(new Probe({ n: worker * 100_000 + i }))
                .pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => "hang" as const }), Effect.exit)
              // a few hundred commands a second at most: the machine is shared
              if (Exit.isSuccess(exit))
                yield* Effect.zipRight(
                  Ref.update(answered, (n) => n + 1),
                  Effect.sleep("10 millis")
                )
              else {
                const failure = Cause.failureOption(exit.cause)
                const tag =
                  failure._tag === "Some" && typeof failure.value === "object" ? failure.value._tag : undefined
                if (tag === "CommandTimeout" || tag === "CommandTransportError" || tag === "BusOverloaded") {
                  yield* Ref.update(typed, (t) => [...t, tag])
                  // a failed dispatch is retried a moment later by its caller
                  yield* Effect.sleep("100 millis")
                } else yield* Ref.update(broken, (b) => [...b, Cause.pretty(exit.cause)])
              }
            }
          })
        const dispatchers = yield* Effect.fork(
          Effect.forEach([1, 2, 3, 4], dispatcher, { concurrency: "unbounded", discard: true })
        )
        const answeredBy = (what: string, more: number) =>
          Effect.flatMap(Ref.get(answered), (before) => waitFor(what, Ref.get(answered), (n) => n >= before + more))

        yield* answeredBy("answered before the faults", 20)
        // 1. the client's node dies: it reconnects to another, the servers' interest reaches it over routes
        const clientNode = connectedTo(Context.get(client, Nats.Nats).connection)!
        yield* cluster.node(clientNode).kill
        yield* answeredBy(`answered with ${clientNode} down`, 20)
        // a connection made now, with the dead node among its seeds, reaches a live one
        const alive = cluster.nodes.find((node) => node.name !== clientNode)!
        const late = yield* Layer.build(
          Nats.layer({ servers: [cluster.node(clientNode).url, alive.url, cluster.node(clientNode).url] })
        )
        assert.strictEqual(connectedTo(Context.get(late, Nats.Nats).connection), alive.name)
        yield* cluster.node(clientNode).start
        yield* cluster.awaitAll()
        // 2. server a's node dies (if it is another one): b answers meanwhile, a comes back
        const serverNode = connectedTo(servers[0]!.connection)!
        yield* cluster.node(serverNode).kill
        yield* answeredBy(`answered with ${serverNode} down`, 20)
        yield* cluster.node(serverNode).start
        yield* cluster.awaitAll()
        yield* answeredBy("answered after the faults", 20)
        yield* Deferred.succeed(stop, undefined)
        yield* Fiber.join(dispatchers)

        assert.deepStrictEqual(yield* Ref.get(broken), [], "every failure is a typed bus error")
        const failures = yield* Ref.get(typed)
        const byTag = [...new Set(failures)].map((tag) => `${failures.filter((t) => t === tag).length} ${tag}`)
        yield* Effect.log(`commands: ${yield* Ref.get(answered)} answered; failed typed: ${byTag.join(", ") || "none"}`)
      }),
    300_000
  )
})
