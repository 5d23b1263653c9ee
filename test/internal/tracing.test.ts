import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { withSpanIfRecorded } from "../../src/internal/tracing.js"

/** A tracer that records the names and attributes of the spans it makes. */
const recording = () => {
  const made: Array<{ readonly name: string; readonly attributes: ReadonlyMap<string, unknown> }> = []
  const native = Effect.runSync(Effect.tracer)
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = native.span(name, parent, context, links, startTime, kind, options)
      made.push({ name, attributes: span.attributes })
      return span
    },
    context: (f) => f()
  })
  return { made, tracer }
}

describe("withSpanIfRecorded", () => {
  it.effect("makes no span under Effect's built-in tracer, which would keep nothing", () =>
    Effect.gen(function* () {
      const inside = yield* withSpanIfRecorded("Thing.do", {})(Effect.option(Effect.currentSpan))
      assert.isTrue(Option.isNone(inside))
      // under a parent span, the inside runs under that parent
      const parent = yield* Effect.withSpan(
        withSpanIfRecorded("Thing.do", {})(Effect.map(Effect.currentSpan, (s) => s.name)),
        "Outer"
      )
      assert.strictEqual(parent, "Outer")
    })
  )

  it.effect("makes the span, with its attributes, under any other tracer", () =>
    Effect.gen(function* () {
      const { made, tracer } = recording()
      const inside = yield* withSpanIfRecorded("Thing.do", { attributes: { thing: 7 } })(
        Effect.map(Effect.currentSpan, (s) => s.name)
      ).pipe(Effect.withTracer(tracer))
      assert.strictEqual(inside, "Thing.do")
      assert.deepStrictEqual(
        made.map((s) => [s.name, s.attributes.get("thing")]),
        [["Thing.do", 7]]
      )
    })
  )
})
