/**
 * The cost of personal fields (`Personal.field`, crypto-shredding) on W3 and U1, as a same-run ratio:
 * - W3 `personal`: 200 appends of 50 events encoded through a codec, with one personal field sealed
 *   (AES-256-GCM, memory key store, one subject per stream), against the same events through a codec
 *   without personal fields, taking turns on each store;
 * - U1 `personal`: stored v1 events with one sealed field, opened a page of 500 at a time, upcast through
 *   the 3-step chain and decoded, against the same events stored in clear through the same chain.
 * The ratio is the personal variant's rate over the plain one's (1 = free).
 */
import { randomUUID } from "node:crypto"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Event from "../../src/Event.js"
import type * as EventStore from "../../src/EventStore.js"
import * as KeyStore from "../../src/KeyStore.js"
import * as Personal from "../../src/Personal.js"
import * as Upcaster from "../../src/Upcaster.js"
import {
  type Measurement,
  measureEffect,
  medians,
  type Options,
  perSecond,
  type Result,
  result,
  scaled
} from "../harness.js"
import { type Target, withFreshStore } from "../targets.js"

const note = "a short text of about 40 characters....."

const fields = (personal: boolean) => ({
  holderId: Schema.String,
  amount: Schema.Finite,
  note: personal ? Personal.field(Schema.String, { subject: "holderId", erased: "" }) : Schema.String
})

// ---------------------------------------------------------------------------------------------------
// W3 personal
// ---------------------------------------------------------------------------------------------------

const appendEncoded =
  (store: EventStore.EventStore["Type"], codec: Upcaster.EventCodec<any>, run: string, eventsPerAppend: number) =>
  (i: number) =>
    Effect.gen(function* () {
      const holderId = `h-${run}-${i}`
      const encoded = yield* Effect.forEach(Array.from({ length: eventsPerAppend }), () =>
        codec.encode({ _tag: "Deposited", holderId, amount: 100, note })
      )
      const events = yield* Event.makeAll(encoded)
      return yield* store.append(`WP-${run}-${i}`, events, { expectedVersion: Event.NoStream })
    })

/** W3 through a codec, with and without one personal field, on every store. */
export const W3Personal = async (options: Options, targets: ReadonlyArray<Target>): Promise<ReadonlyArray<Result>> => {
  const count = scaled(options, 200, 20)
  const eventsPerAppend = 50
  const rate = (m: Measurement) => perSecond(m, eventsPerAppend)
  const [plain, personal] = await Effect.runPromise(
    Effect.all([
      Upcaster.codec({ events: Schema.TaggedStruct("Deposited", fields(false)) }),
      Upcaster.codec({ events: Schema.TaggedStruct("Deposited", fields(true)) })
    ])
  )
  const runOn = (target: Target, codec: Upcaster.EventCodec<any>) => () =>
    withFreshStore(target, (store) =>
      Effect.flatMap(KeyStore.makeMemory, (keys) =>
        Effect.provideService(
          measureEffect(count, 1, appendEncoded(store, codec, randomUUID(), eventsPerAppend)),
          KeyStore.KeyStore,
          keys
        )
      )
    )
  const results: Array<Result> = []
  for (const target of targets) {
    const [clear, sealed] = await medians(options.repetitions, [runOn(target, plain), runOn(target, personal)], rate)
    results.push(
      result({
        id: "W3",
        store: target.name,
        variant: "codec",
        value: rate(clear!),
        unit: "events/s",
        measurement: clear!,
        notes: "events encoded through a codec without personal fields: the personal variant's baseline"
      }),
      result({
        id: "W3",
        store: target.name,
        variant: "personal",
        value: rate(sealed!),
        unit: "events/s",
        measurement: sealed!,
        baseline: rate(clear!),
        notes: "one Personal field sealed per event (memory key store); ratio = personal / codec, same run"
      })
    )
  }
  return results
}

// ---------------------------------------------------------------------------------------------------
// U1 personal
// ---------------------------------------------------------------------------------------------------

const chain = (personal: boolean) =>
  Upcaster.codec({
    events: Schema.TaggedStruct("MoneyDeposited", {
      ...fields(personal),
      currency: Schema.String,
      channel: Schema.String
    }),
    versions: { MoneyDeposited: 4 },
    upcasters: [
      Upcaster.step({ type: "MoneyDeposited", from: 1, upcast: (d) => ({ ...d, amount: Number(d.amount) }) }),
      Upcaster.step({ type: "MoneyDeposited", from: 2, upcast: (d) => ({ ...d, currency: "EUR" }) }),
      Upcaster.step({ type: "MoneyDeposited", from: 3, upcast: (d) => ({ ...d, channel: "web" }) })
    ]
  })

const pageSize = 500

/** U1's decode path, a page at a time, with and without one personal field (opened first). */
export const U1Personal = async (options: Options): Promise<ReadonlyArray<Result>> => {
  const count = scaled(options, 100_000, 1000)
  const rate = (seconds: number) => count / seconds
  const keys = Effect.runSync(KeyStore.makeMemory)
  const [plain, personal] = await Effect.runPromise(Effect.all([chain(false), chain(true)]))
  const envelope = (i: number): Omit<Event.RecordedEvent, "data"> => ({
    eventId: "00000000-0000-7000-8000-000000000000",
    type: "MoneyDeposited",
    schemaVersion: 1,
    metadata: {},
    streamId: `U1-${i}` as Event.StreamId,
    category: "U1",
    version: 1,
    position: BigInt(i + 1),
    transaction: 1n,
    recordedAt: DateTime.unsafeMake(0)
  })
  // stored text: v1 data, the note sealed for the personal variant (one subject per 10 events)
  const stored = (sealed: boolean) =>
    Effect.runPromise(
      Effect.forEach(Array.from({ length: pageSize }), (_, i) => {
        const data = { holderId: `h-${i % 50}`, amount: "100", note }
        return sealed
          ? Effect.map(Personal.seal(data, [{ name: "note", subject: "holderId" }]), (d) => JSON.stringify(d))
          : Effect.succeed(JSON.stringify(data))
      }).pipe(Effect.provideService(KeyStore.KeyStore, keys))
    )
  const [clearText, sealedText] = await Promise.all([stored(false), stored(true)])
  const decodeAll = (codec: Upcaster.EventCodec<any>, texts: ReadonlyArray<string>) => () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const start = performance.now()
        for (let done = 0; done < count; done += pageSize) {
          const page = texts.map((text, i) => ({ ...envelope(i), data: JSON.parse(text) }) as Event.RecordedEvent)
          for (const recorded of yield* codec.open(page)) {
            const decoded = codec.decodeEither(recorded)
            if (decoded._tag === "Left") return yield* decoded.left
          }
        }
        return (performance.now() - start) / 1000
      }).pipe(Effect.provideService(KeyStore.KeyStore, keys))
    )
  const [clear, sealed] = await medians(
    options.repetitions,
    [decodeAll(plain, clearText), decodeAll(personal, sealedText)],
    (s) => -s
  )
  return [
    result({
      id: "U1",
      store: "codec",
      variant: "3-step upcast + decode, pages of 500",
      value: rate(clear!),
      unit: "events/s",
      notes: "the personal variant's baseline"
    }),
    result({
      id: "U1",
      store: "codec",
      variant: "personal",
      value: rate(sealed!),
      unit: "events/s",
      baseline: rate(clear!),
      notes: "one sealed Personal field opened per event (memory key store); ratio = personal / plain, same run"
    })
  ]
}
