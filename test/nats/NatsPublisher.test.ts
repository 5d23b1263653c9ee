/**
 * The JetStream publisher against the local NATS (a fresh stream per test) and a throwaway server for
 * the outage: order, subjects, message ids and duplicates, stream configuration checks.
 */
import { randomBytes } from "node:crypto"
import { jetstreamManager, StorageType } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Event from "../../src/Event.js"
import * as Nats from "../../src/nats/Nats.js"
import * as Outbox from "../../src/Outbox.js"
import * as NatsPublisher from "../../src/nats/NatsPublisher.js"
import { natsUrl } from "../support/config.js"
import { subscribeDenied, throwawayNats, throwawayNatsWith } from "../support/servers.js"

const names = () => {
  const id = randomBytes(4).toString("hex")
  return { stream: `EES_TEST_${id}`, subjectPrefix: `ees_${id}` }
}

const recorded = (streamId: string, version: number, type = "Deposited"): Event.RecordedEvent => ({
  eventId: crypto.randomUUID(),
  type,
  schemaVersion: 1,
  data: { amount: version },
  metadata: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
  streamId: streamId as Event.StreamId,
  category: Event.categoryOf(streamId),
  version,
  position: BigInt(version),
  transaction: BigInt(version),
  recordedAt: DateTime.unsafeMake(0)
})

/** Builds the publisher (and its connection) in the current scope. */
const publisherOn = (url: string, options: NatsPublisher.Options) =>
  Effect.map(
    Layer.build(NatsPublisher.layer(options).pipe(Layer.provideMerge(Nats.layer({ servers: url })))),
    (context) => ({
      publisher: Context.get(context, Outbox.Publisher),
      nats: Context.get(context, Nats.Nats)
    })
  )

const deleteStream = (stream: string) =>
  Effect.promise(async () => {
    const nc = await connect({ servers: natsUrl })
    const jsm = await jetstreamManager(nc)
    await jsm.streams.delete(stream).catch(() => false)
    await nc.close()
  })

describe("NatsPublisher", () => {
  it("escapes what NATS reads in subject tokens, injectively", () => {
    assert.strictEqual(NatsPublisher.token("Account-42"), "Account-42")
    assert.strictEqual(NatsPublisher.token("a.b*c>d e~f"), "a~2Eb~2Ac~3Ed~20e~7Ef")
    assert.strictEqual(NatsPublisher.token(""), "~")
    assert.notStrictEqual(NatsPublisher.token("a.b"), NatsPublisher.token("a~2Eb"))
  })

  for (const window of [undefined, 8]) {
    it.scopedLive(
      `publishes in order under the event ids; publishing again is acked as duplicates (window ${window ?? "default"})`,
      () =>
        Effect.gen(function* () {
          const { stream, subjectPrefix } = names()
          yield* Effect.addFinalizer(() => deleteStream(stream))
          const { nats, publisher } = yield* publisherOn(natsUrl, {
            stream,
            subjectPrefix,
            storage: "memory",
            ...(window === undefined ? {} : { window })
          })
          const events = Array.from({ length: 200 }, (_, i) => recorded(`Account-${i % 7}`, Math.floor(i / 7) + 1))
          const acks = yield* publisher.publish(events)
          assert.deepStrictEqual(
            acks.map((a) => a.eventId),
            events.map((e) => e.eventId)
          )
          assert.isTrue(acks.every((a) => !a.duplicate))
          const again = yield* publisher.publish(events.slice(0, 50))
          assert.isTrue(again.every((a) => a.duplicate))
          const jsm = yield* Effect.promise(() => jetstreamManager(nats.connection))
          const info = yield* Effect.promise(() => jsm.streams.info(stream))
          assert.strictEqual(info.state.messages, 200, "nothing stored twice")
          // stored in publish order, on the event's subject, with its id and headers
          for (const [i, event] of events.entries()) {
            const msg = yield* Effect.promise(() => jsm.streams.getMessage(stream, { seq: i + 1 }))
            assert.strictEqual(msg!.subject, `${subjectPrefix}.Account.Account-${i % 7}.Deposited`)
            assert.strictEqual(msg!.header.get("Nats-Msg-Id"), event.eventId)
            assert.strictEqual(msg!.header.get("traceparent"), event.metadata.traceparent)
            assert.strictEqual(msg!.header.get("Ees-Version"), String(event.version))
          }
        })
    )
  }

  it.scopedLive("acks come back under the configured inbox prefix; a prefix with wildcards is a typed error", () =>
    Effect.gen(function* () {
      const { stream, subjectPrefix } = names()
      yield* Effect.addFinalizer(() => deleteStream(stream))
      const inboxPrefix = `acks_${subjectPrefix}`
      // a second connection sees the acks on their way back
      const nc = yield* Effect.acquireRelease(
        Effect.promise(() => connect({ servers: natsUrl })),
        (nc) => Effect.promise(() => nc.close())
      )
      const seen: Array<string> = []
      nc.subscribe(`${inboxPrefix}.>`, { callback: (_, msg) => void seen.push(msg.subject) })
      yield* Effect.promise(() => nc.flush())
      const { publisher } = yield* publisherOn(natsUrl, { stream, subjectPrefix, storage: "memory", inboxPrefix })
      const [ack] = yield* publisher.publish([recorded("Account-1", 1)])
      assert.strictEqual(ack!.sequence, 1)
      yield* Effect.promise(() => nc.flush())
      assert.strictEqual(seen.length, 1)
      const error = yield* Effect.flip(
        publisherOn(natsUrl, { stream, subjectPrefix, storage: "memory", inboxPrefix: "a.*" })
      )
      assert.strictEqual(error._tag, "PublishError")
    })
  )

  it.scopedLive("an event whose traceparent is no valid one is published without it, wherever it is in the batch", () =>
    Effect.gen(function* () {
      const { stream, subjectPrefix } = names()
      yield* Effect.addFinalizer(() => deleteStream(stream))
      const { nats, publisher } = yield* publisherOn(natsUrl, {
        stream,
        subjectPrefix,
        storage: "memory",
        window: 2,
        timeout: "3 seconds"
      })
      // a line break makes a header value the client refuses (and would inject a header if it did not)
      const injected = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nEes-Version: 9"
      const withBadTraceparent = (version: number) => ({
        ...recorded("Account-1", version),
        metadata: { traceparent: injected }
      })
      // with 2 in flight, event 2 is sent as the publish starts and event 4 from the ack of event 2, inside
      // the client's reader (a throw there would stop it reading for every subscription)
      const events = [recorded("Account-1", 1), withBadTraceparent(2), recorded("Account-1", 3), withBadTraceparent(4)]
      const acks = yield* publisher.publish(events)
      assert.deepStrictEqual(
        acks.map((a) => a.sequence),
        [1, 2, 3, 4]
      )
      const jsm = yield* Effect.promise(() => jetstreamManager(nats.connection))
      for (const [i, event] of events.entries()) {
        const msg = yield* Effect.promise(() => jsm.streams.getMessage(stream, { seq: i + 1 }))
        const expected = event.metadata.traceparent === injected ? undefined : event.metadata.traceparent
        assert.strictEqual(msg!.header.get("traceparent") || undefined, expected)
        assert.strictEqual(msg!.header.get("Ees-Version"), String(event.version))
        assert.deepStrictEqual(msg!.json<{ metadata: unknown }>().metadata, event.metadata, "the metadata as stored")
      }
      const [next] = yield* publisher.publish([recorded("Account-1", 5)])
      assert.strictEqual(next!.sequence, 5, "the connection still reads")
    })
  )

  it.scopedLive("a reply that is no JetStream ack fails the publish with a typed error, and the client reads on", () =>
    Effect.gen(function* () {
      const { stream, subjectPrefix } = names()
      const { nats, publisher } = yield* publisherOn(natsUrl, {
        stream,
        subjectPrefix,
        storage: "memory",
        timeout: "3 seconds"
      })
      yield* deleteStream(stream)
      // something other than a stream answers on its subjects
      const bodies = ["null", '{"error":null}', "[]", "7"]
      let answered = 0
      const responder = nats.connection.subscribe(`${subjectPrefix}.>`, {
        callback: (_, msg) => void msg.respond(bodies[answered++ % bodies.length])
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => responder.unsubscribe()))
      yield* Effect.promise(() => nats.connection.flush())
      for (const body of bodies) {
        const error = yield* Effect.flip(publisher.publish([recorded("Account-1", 1)]))
        assert.strictEqual(error.detail, "invalid ack response", body)
      }
    })
  )

  it.scopedLive("an existing stream with another configuration is an error, not changed", () =>
    Effect.gen(function* () {
      const { stream, subjectPrefix } = names()
      yield* Effect.addFinalizer(() => deleteStream(stream))
      yield* publisherOn(natsUrl, { stream, subjectPrefix, storage: "memory", duplicateWindow: "1 minute" })
      const error = yield* Effect.flip(
        publisherOn(natsUrl, { stream, subjectPrefix, storage: "memory", duplicateWindow: "2 minutes" })
      )
      assert.strictEqual(error._tag, "PublishError")
      assert.include(error.message, "duplicate window")
    })
  )

  it.scopedLive("replicas, when given, are set on a new stream and checked on an existing one", () =>
    Effect.gen(function* () {
      const { stream, subjectPrefix } = names()
      yield* Effect.addFinalizer(() => deleteStream(stream))
      const { nats } = yield* publisherOn(natsUrl, { stream, subjectPrefix, storage: "memory", replicas: 1 })
      const jsm = yield* Effect.promise(() => jetstreamManager(nats.connection))
      assert.strictEqual((yield* Effect.promise(() => jsm.streams.info(stream))).config.num_replicas, 1)
      // not given: any count is taken
      yield* publisherOn(natsUrl, { stream, subjectPrefix, storage: "memory" })
      const error = yield* Effect.flip(publisherOn(natsUrl, { stream, subjectPrefix, storage: "memory", replicas: 3 }))
      assert.strictEqual(error._tag, "PublishError")
      assert.include(error.message, "1 replicas")
    })
  )

  it.scopedLive("with no stream capturing the subject a publish fails at once with a transient typed error", () =>
    Effect.gen(function* () {
      const { stream, subjectPrefix } = names()
      const { publisher } = yield* publisherOn(natsUrl, { stream, subjectPrefix, storage: "memory" })
      yield* deleteStream(stream)
      const error = yield* Effect.flip(publisher.publish([recorded("Account-1", 1)]))
      assert.strictEqual(error._tag, "PublishError")
      assert.include(error.detail, "no stream captures")
      assert.isTrue(error.transient)
    })
  )

  it.scopedLive("a message the stream refuses for its size fails with a typed error that is not transient", () =>
    Effect.gen(function* () {
      const { stream, subjectPrefix } = names()
      yield* Effect.addFinalizer(() => deleteStream(stream))
      const nc = yield* Effect.acquireRelease(
        Effect.promise(() => connect({ servers: natsUrl })),
        (nc) => Effect.promise(() => nc.close())
      )
      const jsm = yield* Effect.promise(() => jetstreamManager(nc))
      // the publisher checks subjects, duplicate window and storage of an existing stream, not its size limit
      yield* Effect.promise(() =>
        jsm.streams.add({
          name: stream,
          subjects: [`${subjectPrefix}.>`],
          storage: StorageType.Memory,
          duplicate_window: 120_000_000_000,
          max_msg_size: 512
        })
      )
      const { publisher } = yield* publisherOn(natsUrl, { stream, subjectPrefix, storage: "memory" })
      const small = recorded("Account-1", 1)
      const big = { ...recorded("Account-1", 2), data: { note: "x".repeat(1000) } }
      const error = yield* Effect.flip(publisher.publish([small, big]))
      assert.strictEqual(error._tag, "PublishError")
      assert.isFalse(error.transient)
      const [ack] = yield* publisher.publish([small])
      assert.isTrue(ack!.duplicate, "the small one was stored before")
    })
  )

  it.scopedLive(
    "with NATS down a publish fails with a typed error once its ack times out",
    () =>
      Effect.gen(function* () {
        const server = yield* throwawayNats
        const { stream, subjectPrefix } = names()
        const { publisher } = yield* publisherOn(server.url, { stream, subjectPrefix, timeout: "500 millis" })
        yield* publisher.publish([recorded("Account-1", 1)])
        yield* server.kill
        const error = yield* Effect.flip(publisher.publish([recorded("Account-1", 2)]))
        assert.strictEqual(error._tag, "PublishError")
      }),
    30_000
  )

  it.scopedLive(
    "retried after the duplicate window, an event already in the stream is found there, not stored again",
    () =>
      Effect.gen(function* () {
        const server = yield* throwawayNats
        const { stream, subjectPrefix } = names()
        const { nats, publisher } = yield* publisherOn(server.url, {
          stream,
          subjectPrefix,
          duplicateWindow: "1 second",
          timeout: "300 millis"
        })
        const event = recorded("Account-1", 1)
        yield* publisher.publish([event])
        // the broker goes away: the retry's outcome is unknown to the relay, which tries again later
        yield* server.kill
        assert.strictEqual((yield* Effect.flip(publisher.publish([event])))._tag, "PublishError")
        yield* Effect.sleep("1200 millis")
        yield* server.start
        const [ack] = yield* publisher
          .publish([event])
          .pipe(Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.intersect(Schedule.recurs(50)))))
        assert.isTrue(ack!.duplicate)
        const jsm = yield* Effect.promise(() => jetstreamManager(nats.connection))
        const info = yield* Effect.promise(() => jsm.streams.info(stream))
        assert.strictEqual(info.state.messages, 1)
      }),
    30_000
  )

  describe("ack subscription permissions", () => {
    it.scopedLive(
      "a refused ack subscription fails the layer with a typed error; an allowed inbox prefix works",
      () =>
        Effect.gen(function* () {
          // (the connection's own requests need `_INBOX`: the publisher's acks use a prefix of their own here)
          const server = yield* throwawayNatsWith(subscribeDenied(["relay_acks.>"]))
          const { stream, subjectPrefix } = names()
          const error = yield* Effect.flip(
            publisherOn(server.url, { stream, subjectPrefix, inboxPrefix: "relay_acks", timeout: "2 seconds" })
          )
          assert.strictEqual(error._tag, "PublishError")
          assert.strictEqual(error.operation, "subscribe")
          assert.include((error as Outbox.PublishError).detail, "Permissions Violation")
          const { publisher } = yield* publisherOn(server.url, { stream, subjectPrefix, inboxPrefix: "other_acks" })
          const [ack] = yield* publisher.publish([recorded("Account-1", 1)])
          assert.strictEqual(ack!.sequence, 1)
        }),
      30_000
    )

    it.scopedLive(
      "an ack subscription the server ends fails publishes with a typed error, and is renewed once allowed again",
      () =>
        Effect.gen(function* () {
          const server = yield* throwawayNatsWith(subscribeDenied([]))
          const { stream, subjectPrefix } = names()
          const { publisher } = yield* publisherOn(server.url, {
            stream,
            subjectPrefix,
            inboxPrefix: "relay_acks",
            timeout: "2 seconds"
          })
          yield* publisher.publish([recorded("Account-1", 1)])
          // the server applies a reload shortly after: publish until it has
          yield* server.reload(subscribeDenied(["relay_acks.>"]))
          const retrying = Schedule.spaced("200 millis").pipe(Schedule.intersect(Schedule.recurs(50)))
          const second = recorded("Account-1", 2)
          const refused = yield* publisher.publish([second]).pipe(
            Effect.flip,
            Effect.filterOrFail((error) => error.operation === "subscribe"),
            Effect.retry(retrying)
          )
          assert.isTrue(refused.transient)
          yield* server.reload(subscribeDenied([]))
          // the refused publishes were sent all the same: the event may be there already, once
          const [ack] = yield* publisher.publish([second]).pipe(Effect.retry(retrying))
          assert.strictEqual(ack!.sequence, 2)
        }),
      30_000
    )
  })
})
