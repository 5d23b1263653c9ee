/**
 * O1: the outbox relay publishing 10,000 appended events (PostgreSQL) to JetStream and waiting for the
 * acks, next to the raw baseline: the same messages published with the plain NATS client, pipelined
 * (256 in flight). Field `duplicates`: messages the stream holds beyond the events.
 */
import { randomBytes } from "node:crypto"
import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream"
import { connect, headers } from "@nats-io/transport-node"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Nats from "../../src/nats/Nats.js"
import * as NatsPublisher from "../../src/nats/NatsPublisher.js"
import * as Outbox from "../../src/Outbox.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { median, type Options, payload, type Result, result, scaled } from "../harness.js"

const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222"

/** Publishes `count` messages with the plain client, 256 in flight; seconds until the last ack. */
const raw = async (count: number): Promise<number> => {
  const nc = await connect({ servers: natsUrl, noAsyncTraces: true })
  const jsm = await jetstreamManager(nc)
  const stream = `BENCH_RAW_${randomBytes(4).toString("hex")}`
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: StorageType.Memory })
  const js = jetstream(nc)
  const body = JSON.stringify({ data: payload, metadata: {} })
  const start = performance.now()
  let next = 0
  const worker = async () => {
    while (next < count) {
      const i = next++
      // the headers the relay sends (see NatsPublisher): the same messages, not lighter ones
      const h = headers()
      h.set("Ees-Stream-Id", `O-${i % 200}`)
      h.set("Ees-Version", String(Math.floor(i / 200) + 1))
      h.set("Ees-Type", "Deposited")
      h.set("Ees-Schema-Version", "1")
      await js.publish(`${stream}.O.O-${i % 200}.Deposited`, body, { msgID: `${stream}-${i}`, headers: h })
    }
  }
  await Promise.all(Array.from({ length: 256 }, worker))
  const seconds = (performance.now() - start) / 1000
  await jsm.streams.delete(stream)
  await nc.close()
  return seconds
}

/** Appends `count` events, then times the relay until JetStream holds them all. */
const relay = (options: Options, count: number) =>
  Effect.gen(function* () {
    const id = randomBytes(4).toString("hex")
    const schema = `bench_o_${id}`
    const stream = `BENCH_OUTBOX_${id}`
    const stores = Layer.mergeAll(SqlEventStore.layer({ schema }), SqlCheckpointStore.layer({ schema })).pipe(
      Layer.provideMerge(Postgres.layer({ url: options.pgUrl, maxConnections: 8 }))
    )
    return yield* Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* Effect.forEach(
        Array.from({ length: Math.ceil(count / 50) }, (_, i) => i),
        (i) =>
          Effect.flatMap(
            Event.makeAll(Array.from({ length: 50 }, () => ({ type: "Deposited", data: payload }))),
            (events) => store.append(`O-${i}`, events)
          ),
        { concurrency: 8, discard: true }
      )
      const nc = yield* Effect.promise(() => connect({ servers: natsUrl }))
      const jsm = yield* Effect.promise(() => jetstreamManager(nc))
      let start = 0
      const messages = yield* Effect.scoped(
        Effect.gen(function* () {
          // connected and the stream made first, as the raw baseline is before its clock starts
          const publisher = yield* Layer.build(
            NatsPublisher.layer({ stream, subjectPrefix: `bench_${id}`, storage: "memory" }).pipe(
              Layer.provide(Nats.layer({ servers: natsUrl }))
            )
          )
          start = performance.now()
          yield* Layer.build(
            Outbox.relayLayer({ name: `outbox-${id}`, batchSize: 1000, pollInterval: "20 millis" }).pipe(
              Layer.provide(Layer.succeedContext(publisher))
            )
          )
          let held = 0
          while (held < count) {
            yield* Effect.sleep("5 millis")
            held = (yield* Effect.promise(() => jsm.streams.info(stream))).state.messages
          }
          return held
        })
      )
      const seconds = (performance.now() - start) / 1000
      yield* Effect.sleep("200 millis")
      const final = (yield* Effect.promise(() => jsm.streams.info(stream))).state.messages
      yield* Effect.promise(() => jsm.streams.delete(stream).then(() => nc.close()))
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`drop schema if exists ${sql(schema)} cascade`)
      return { seconds, duplicates: Math.max(0, Math.max(messages, final) - count) }
    }).pipe(Effect.provide(stores))
  })

export const O1 = async (options: Options): Promise<ReadonlyArray<Result>> => {
  const count = scaled(options, 10_000, 1000)
  const rawSeconds = await median(
    options.repetitions,
    () => raw(count),
    (s) => -s
  )
  const run = await median(
    options.repetitions,
    () => Effect.runPromise(relay(options, count).pipe(Effect.orDie)),
    (r) => -r.seconds
  )
  const baseline = count / rawSeconds
  return [
    result({
      id: "O1",
      store: "postgres",
      value: count / run.seconds,
      unit: "events/s",
      baseline,
      notes: `${count} events relayed to JetStream (memory stream) and acked`,
      extra: { gaps: 0, duplicates: run.duplicates }
    }),
    result({ id: "O1", store: "raw-nats", value: baseline, unit: "events/s", notes: "the baseline" })
  ]
}
