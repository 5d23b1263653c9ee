import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as Event from "../src/Event.js"

const fields = FastCheck.record(
  {
    eventId: FastCheck.oneof(
      FastCheck.uuid(),
      FastCheck.uuid().map((u) => u.toUpperCase()),
      FastCheck.string(),
      FastCheck.integer()
    ),
    type: FastCheck.oneof(
      FastCheck.constantFrom("Opened", "", " padded", "a\nb", "x".repeat(256), "é✓"),
      FastCheck.string(),
      FastCheck.integer()
    ),
    schemaVersion: FastCheck.oneof(FastCheck.integer({ min: -2, max: 5 }), FastCheck.double(), FastCheck.constant("1")),
    data: FastCheck.jsonValue(),
    metadata: FastCheck.oneof(
      FastCheck.constant({}),
      FastCheck.record({ correlationId: FastCheck.oneof(FastCheck.string(), FastCheck.integer()) }),
      FastCheck.record({ principal: FastCheck.string(), custom: FastCheck.jsonValue() }),
      FastCheck.constantFrom("text", [], null, { traceparent: null })
    )
  },
  { requiredKeys: [] }
)

describe("Event", () => {
  it.effect("eventDataProblem agrees with the EventData Schema (property)", () =>
    Effect.sync(() => {
      const decode = Schema.decodeUnknownEither(Event.EventData)
      FastCheck.assert(
        FastCheck.property(fields, (value) => {
          const schemaAccepts = Either.isRight(decode(value))
          const problem = Event.eventDataProblem(value)
          assert.strictEqual(problem === undefined, schemaAccepts, `${JSON.stringify(value)}: ${problem}`)
        }),
        { numRuns: 2000 }
      )
    })
  )

  it.effect("expectedVersionProblem agrees with the ExpectedVersion Schema (property)", () =>
    Effect.sync(() => {
      const decode = Schema.decodeUnknownEither(Event.ExpectedVersion)
      const candidates = FastCheck.oneof(
        FastCheck.record(
          {
            _tag: FastCheck.constantFrom("Any", "NoStream", "StreamExists", "Exact", "Other"),
            version: FastCheck.oneof(FastCheck.integer(), FastCheck.double(), FastCheck.constant(2 ** 31))
          },
          { requiredKeys: ["_tag"] }
        ),
        FastCheck.anything()
      )
      FastCheck.assert(
        FastCheck.property(candidates, (value) => {
          assert.strictEqual(Event.expectedVersionProblem(value) === undefined, Either.isRight(decode(value)))
        }),
        { numRuns: 2000 }
      )
    })
  )

  it.effect("stream ids: category, validation", () =>
    Effect.gen(function* () {
      assert.strictEqual(Event.categoryOf("Account-42-x"), "Account")
      assert.strictEqual(Event.categoryOf("standalone"), "standalone")
      assert.strictEqual(Event.categoryOf("-leading"), "-leading")
      assert.strictEqual(yield* Event.makeStreamId("Account", "42"), "Account-42")
      assert.strictEqual((yield* Effect.flip(Event.makeStreamId("Bad-Category", "1")))._tag, "InvalidStreamId")
      assert.strictEqual((yield* Effect.flip(Event.streamId("a\u0000b")))._tag, "InvalidStreamId")
    })
  )

  it.effect("generated event ids are UUIDv7, time-ordered", () =>
    Effect.gen(function* () {
      const ids = (yield* Effect.all(Array.from({ length: 200 }, () => Event.make({ type: "A", data: 1 })))).map(
        (e) => e.eventId
      )
      for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      assert.strictEqual(new Set(ids).size, ids.length)
      const times = ids.map((id) => id.slice(0, 13))
      assert.deepStrictEqual(times, [...times].sort())
    })
  )

  it("checkpoint order compares the transaction first, then the position", () => {
    const order = Event.checkpointOrder
    assert.strictEqual(order({ transaction: 1n, position: 9n }, { transaction: 2n, position: 1n }), -1)
    assert.strictEqual(order({ transaction: 2n, position: 1n }, { transaction: 2n, position: 3n }), -1)
    assert.strictEqual(order({ transaction: 2n, position: 3n }, { transaction: 2n, position: 3n }), 0)
  })
})
