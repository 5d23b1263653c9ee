import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Clock from "effect/Clock"
import * as Random from "effect/Random"
import * as Event from "/work/main/src/Event.js"
import * as Json from "/work/main/src/internal/json.js"
import * as Uuid from "/work/main/src/internal/uuid.js"
const payload = { amount: 100, note: "a short text of about 40 characters....." }
const N = 20000
const bench = (label: string, f: () => unknown) => {
  const t = performance.now()
  for (let i = 0; i < N; i++) f()
  console.log(label, (((performance.now() - t) * 1000) / N).toFixed(2), "us")
}
const run = <A>(e: Effect.Effect<A>) => Effect.runSync(e)
const hex = (n: number, d: number) => n.toString(16).padStart(d, "0")
const v7b = Effect.map(
  Effect.all([Clock.currentTimeMillis, Random.nextInt, Random.nextInt, Random.nextInt]),
  ([ms, a, b, c]) => hex(ms, 12) + hex(a >>> 0, 8) + hex(b >>> 0, 8) + hex(c >>> 0, 8)
)
const dec = Schema.decodeUnknownEither(Event.EventData)
const ev = run(Event.make({ type: "D", data: payload }))
Effect.runSync(
  Effect.gen(function* () {
    bench("uuid v7 (runSync)", () => run(Uuid.v7))
    bench("uuid alt (runSync)", () => run(v7b))
    bench("runSync(succeed)", () => run(Effect.succeed(1)))
    const t = performance.now()
    for (let i = 0; i < N; i++) yield* Uuid.v7
    console.log("uuid v7 in gen", (((performance.now() - t) * 1000) / N).toFixed(2))
    const t2 = performance.now()
    for (let i = 0; i < N; i++) yield* Event.make({ type: "D", data: payload })
    console.log("Event.make in gen", (((performance.now() - t2) * 1000) / N).toFixed(2))
    bench("schema decode EventData", () => dec(ev))
    bench("json encode data", () => Json.encode(payload))
    bench("JSON.stringify data", () => JSON.stringify(payload))
  })
)
