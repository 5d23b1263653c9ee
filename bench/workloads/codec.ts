/**
 * U1: decoding stored events into domain events through a 3-step upcaster chain (v1 -> v4), from the
 * stored JSON text, versus plain `JSON.parse` of the same text. Not a store workload: it measures the
 * codec's own cost per event.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as DateTime from "effect/DateTime"
import type * as Event from "../../src/Event.js"
import * as Upcaster from "../../src/Upcaster.js"
import { median, type Options, type Result, result, scaled } from "../harness.js"

const Deposited = Schema.TaggedStruct("MoneyDeposited", {
  amount: Schema.Finite,
  note: Schema.String,
  currency: Schema.String,
  channel: Schema.String
})

const makeCodec = Upcaster.codec({
  events: Deposited,
  versions: { MoneyDeposited: 4 },
  upcasters: [
    Upcaster.step({ type: "MoneyDeposited", from: 1, upcast: (d) => ({ ...d, amount: Number(d.amount) }) }),
    Upcaster.step({ type: "MoneyDeposited", from: 2, upcast: (d) => ({ ...d, currency: "EUR" }) }),
    Upcaster.step({ type: "MoneyDeposited", from: 3, upcast: (d) => ({ ...d, channel: "web" }) })
  ]
})

const storedV1 = JSON.stringify({ amount: "100", note: "a short text of about 40 characters....." })

export const U1 = async (options: Options): Promise<ReadonlyArray<Result>> => {
  const count = scaled(options, 100_000, 1000)
  const rate = (seconds: number) => count / seconds
  const plain = await median(
    options.repetitions,
    async () => {
      const start = performance.now()
      for (let i = 0; i < count; i++) JSON.parse(storedV1)
      return (performance.now() - start) / 1000
    },
    (s) => -s
  )
  const eventCodec = await Effect.runPromise(makeCodec)
  const envelope: Omit<Event.RecordedEvent, "data"> = {
    eventId: "00000000-0000-7000-8000-000000000000",
    type: "MoneyDeposited",
    schemaVersion: 1,
    metadata: {},
    streamId: "U1-1" as Event.StreamId,
    category: "U1",
    version: 1,
    position: 1n,
    transaction: 1n,
    recordedAt: DateTime.unsafeMake(0)
  }
  const decoded = await median(
    options.repetitions,
    () =>
      Effect.runPromise(
        Effect.gen(function* () {
          const start = performance.now()
          // decodeEither is what the typed reads use, a page at a time
          for (let i = 0; i < count; i++) {
            const decoded = eventCodec.decodeEither({ ...envelope, data: JSON.parse(storedV1) })
            if (decoded._tag === "Left") return yield* decoded.left
          }
          return (performance.now() - start) / 1000
        })
      ),
    (s) => -s
  )
  return [
    result({
      id: "U1",
      store: "codec",
      variant: "3-step upcast + decode",
      value: rate(decoded),
      unit: "events/s",
      baseline: rate(plain),
      notes: "baseline: JSON.parse alone"
    })
  ]
}
