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
      FastCheck.constantFrom("text", [], null, { traceparent: null }),
      // JSON.parse keeps `__proto__` as a key; decoding would make it the prototype
      FastCheck.constant(JSON.parse('{"__proto__": {"commandId": 1}, "correlationId": "c"}'))
    )
  },
  { requiredKeys: [] }
)

const validEvent = { eventId: "0190e5b2-7c1e-7000-8000-000000000001", type: "Opened", schemaVersion: 1, data: {} }

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

  it("metadata with a __proto__ key is refused, not decoded into an object with another prototype", () => {
    const hostile = JSON.parse('{"__proto__": {"commandId": 42}, "correlationId": "c"}')
    const decoded = Schema.decodeUnknownEither(Event.Metadata)(hostile)
    assert.isTrue(Either.isLeft(decoded))
    assert.include(Event.eventDataProblem({ ...validEvent, metadata: hostile }), "__proto__")
    assert.isTrue(Either.isRight(Schema.decodeUnknownEither(Event.Metadata)({ correlationId: "c", custom: 1 })))
  })

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

  it.effect("makeAll builds the events make would, in order, keeping given ids", () =>
    Effect.gen(function* () {
      const given = "0190a0b0-0000-7000-8000-000000000001"
      const events = yield* Event.makeAll([
        { type: "A", data: { n: 1 } },
        { type: "B", data: 2, schemaVersion: 3, metadata: { principal: "p" }, eventId: given },
        { type: "C", data: null }
      ])
      assert.deepStrictEqual(
        events.map(({ eventId: _, ...rest }) => rest),
        [
          { type: "A", schemaVersion: 1, data: { n: 1 }, metadata: {} },
          { type: "B", schemaVersion: 3, data: 2, metadata: { principal: "p" } },
          { type: "C", schemaVersion: 1, data: null, metadata: {} }
        ]
      )
      assert.strictEqual(events[1]!.eventId, given)
      const generated = [events[0]!.eventId, events[2]!.eventId]
      for (const id of generated)
        assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      assert.notStrictEqual(generated[0], generated[1])
      assert.deepStrictEqual(yield* Event.makeAll([]), [])
    })
  )

  it("checkpoint order compares the transaction first, then the position", () => {
    const order = Event.checkpointOrder
    assert.strictEqual(order({ transaction: 1n, position: 9n }, { transaction: 2n, position: 1n }), -1)
    assert.strictEqual(order({ transaction: 2n, position: 1n }, { transaction: 2n, position: 3n }), -1)
    assert.strictEqual(order({ transaction: 2n, position: 3n }, { transaction: 2n, position: 3n }), 0)
  })

  it("stream hashes are FNV-1a 32-bit then fmix32 (vectors computed independently)", () => {
    // FNV-1a: "" 0x811c9dc5, "a" 0xe40c292c, "foobar" 0xbf9cf968 (published); then fmix32
    assert.strictEqual(Event.streamHash(""), 0xab3e7c0b)
    assert.strictEqual(Event.streamHash("a"), 0x1a80b1b3)
    assert.strictEqual(Event.streamHash("foobar"), 0x0c0da6dc)
    assert.strictEqual(Event.streamHash("Account-42"), 0xed70c601)
  })

  it("partition ranges tile the hash range and agree with partitionOf (property)", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.string(), FastCheck.integer({ min: 1, max: Event.maxPartitions }), (id, count) => {
        const hash = Event.streamHash(id)
        const partition = Event.partitionOf(id, count)
        const { from, to } = Event.partitionRange({ count, index: partition })
        return partition >= 0 && partition < count && from <= hash && hash < to
      })
    )
    for (const count of [1, 3, 7, 1000, Event.maxPartitions]) {
      let next = 0
      for (let index = 0; index < count; index++) {
        const { from, to } = Event.partitionRange({ count, index })
        assert.strictEqual(from, next)
        assert.isTrue(to > from)
        next = to
      }
      assert.strictEqual(next, 2 ** 32)
    }
  })
})
