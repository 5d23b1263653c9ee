import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Upcaster from "../src/Upcaster.js"

// the current domain events
class AccountOpened extends Schema.TaggedClass<AccountOpened>()("AccountOpened", {
  owner: Schema.String,
  currency: Schema.String
}) {}
const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", {
  amount: Schema.Finite,
  currency: Schema.String,
  reference: Schema.String
})
const AccountClosed = Schema.TaggedStruct("AccountClosed", { reason: Schema.optional(Schema.String) })
const AccountEvent = Schema.Union(AccountOpened, MoneyDeposited, AccountClosed)
type AccountEvent = typeof AccountEvent.Type

// their history
const upcasters = [
  // v1 stored amounts as decimal strings: the Schema form decodes the old shape and encodes the new one
  Upcaster.schema({
    type: "MoneyDeposited",
    fromVersion: 1,
    from: Schema.Struct({ amount: Schema.NumberFromString }),
    to: Schema.Struct({ amount: Schema.Finite }),
    transform: (old) => old
  }),
  Upcaster.step({ type: "MoneyDeposited", from: 2, upcast: (data) => ({ ...data, currency: "EUR", reference: "" }) }),
  Upcaster.step({ type: "AccountOpened", from: 1, upcast: (data) => ({ ...data, currency: "EUR" }) }),
  // an old name of MoneyDeposited
  Upcaster.rename({ from: "FundsAdded", to: "MoneyDeposited", version: 1 }),
  // one old event that is two events now
  Upcaster.make({
    from: { type: "AccountOpenedWithDeposit", version: 1 },
    to: [
      { type: "AccountOpened", version: 2 },
      { type: "MoneyDeposited", version: 3 }
    ],
    upcast: (data: any) => [
      { type: "AccountOpened", version: 2, data: { owner: data.owner, currency: "EUR" } },
      { type: "MoneyDeposited", version: 3, data: { amount: data.deposit, currency: "EUR", reference: "opening" } }
    ]
  }),
  Upcaster.drop({ type: "AuditPinged", version: 1 })
]

const makeCodec = Upcaster.codec({
  events: AccountEvent,
  versions: { MoneyDeposited: 3, AccountOpened: 2 },
  upcasters
})

/** Appends raw stored shapes, as an older version of the application wrote them. */
const appendRaw = (streamId: string, events: ReadonlyArray<{ type: string; schemaVersion: number; data: unknown }>) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    Effect.flatMap(Effect.all(events.map((e) => Event.make(e))), (data) => store.append(streamId, data))
  )

const readTyped = (eventCodec: Upcaster.EventCodec<AccountEvent>, streamId: string, policy?: Upcaster.Policy) =>
  Upcaster.readStream(eventCodec, streamId, policy === undefined ? undefined : { policy }).pipe(
    Stream.runCollect,
    Effect.map(Chunk.toArray)
  )

describe("Upcaster", () => {
  it.effect("old versions, renamed, split and dropped events read back as the current events", () =>
    Effect.gen(function* () {
      const eventCodec = yield* makeCodec
      yield* appendRaw("Account-1", [
        { type: "AccountOpened", schemaVersion: 1, data: { owner: "ada" } },
        { type: "MoneyDeposited", schemaVersion: 1, data: { amount: "12.5" } },
        { type: "MoneyDeposited", schemaVersion: 2, data: { amount: 3 } },
        { type: "FundsAdded", schemaVersion: 1, data: { amount: "7" } },
        { type: "AuditPinged", schemaVersion: 1, data: {} },
        { type: "MoneyDeposited", schemaVersion: 3, data: { amount: 1, currency: "USD", reference: "r" } },
        { type: "AccountOpenedWithDeposit", schemaVersion: 1, data: { owner: "bob", deposit: 50 } },
        { type: "AccountClosed", schemaVersion: 1, data: {} }
      ])
      const read = yield* readTyped(eventCodec, "Account-1")
      assert.deepStrictEqual(
        read.map((d) => d.event),
        [
          new AccountOpened({ owner: "ada", currency: "EUR" }),
          MoneyDeposited.make({ amount: 12.5, currency: "EUR", reference: "" }),
          MoneyDeposited.make({ amount: 3, currency: "EUR", reference: "" }),
          MoneyDeposited.make({ amount: 7, currency: "EUR", reference: "" }),
          MoneyDeposited.make({ amount: 1, currency: "USD", reference: "r" }),
          new AccountOpened({ owner: "bob", currency: "EUR" }),
          MoneyDeposited.make({ amount: 50, currency: "EUR", reference: "opening" }),
          AccountClosed.make({})
        ]
      )
      // each domain event keeps the envelope it came from; the split shares one, the dropped one is gone
      assert.deepStrictEqual(
        read.map((d) => d.envelope.version),
        [1, 2, 3, 4, 6, 7, 7, 8]
      )
      // upcasting never writes back
      const stored = yield* Effect.flatMap(EventStore.EventStore, (s) => Stream.runCollect(s.readStream("Account-1")))
      assert.strictEqual(Chunk.unsafeGet(stored, 1).schemaVersion, 1)
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )

  it.effect("encode stores the type, the current version and the data without _tag", () =>
    Effect.gen(function* () {
      const eventCodec = yield* makeCodec
      assert.deepStrictEqual(yield* eventCodec.encode(new AccountOpened({ owner: "ada", currency: "EUR" })), {
        type: "AccountOpened",
        schemaVersion: 2,
        data: { owner: "ada", currency: "EUR" }
      })
      assert.deepStrictEqual(yield* eventCodec.encode(AccountClosed.make({})), {
        type: "AccountClosed",
        schemaVersion: 1,
        data: {}
      })
    })
  )

  it.effect("undecodable events fail with EventDecodeError and its context, or are skipped and counted", () =>
    Effect.gen(function* () {
      const eventCodec = yield* makeCodec
      const cases: ReadonlyArray<readonly [string, number, unknown, Upcaster.EventDecodeError["reason"]]> = [
        ["MoneyDeposited", 1, { amount: "not a number" }, "UpcasterFailed"],
        ["MoneyDeposited", 3, { amount: "1", currency: "EUR", reference: "" }, "InvalidData"],
        ["MoneyDeposited", 3, [1, 2], "InvalidData"],
        ["Teleported", 1, {}, "UnknownType"],
        ["MoneyDeposited", 9, {}, "UnknownVersion"]
      ]
      for (const [i, [type, schemaVersion, data, reason]] of cases.entries()) {
        const streamId = `Bad-${i}`
        yield* appendRaw(streamId, [
          { type: "AccountClosed", schemaVersion: 1, data: {} },
          { type, schemaVersion, data }
        ])
        const error = yield* Effect.flip(readTyped(eventCodec, streamId))
        assert.instanceOf(error, Upcaster.EventDecodeError)
        assert.deepStrictEqual(
          [error.streamId, error.version, error.type, error.schemaVersion, error.reason],
          [streamId, 2, type, schemaVersion, reason]
        )
        const skippedBefore = (yield* Metric.value(Upcaster.skippedEvents)).count
        const tolerant = yield* readTyped(eventCodec, streamId, "skip")
        assert.deepStrictEqual(
          tolerant.map((d) => d.event._tag),
          ["AccountClosed"]
        )
        const skippedAfter = (yield* Metric.value(Upcaster.skippedEvents)).count
        assert.strictEqual(skippedAfter - skippedBefore, 1)
      }
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )

  it.effect("an upcaster producing an event it does not declare is a decode failure", () =>
    Effect.gen(function* () {
      const eventCodec = yield* Upcaster.codec({
        events: AccountEvent,
        upcasters: [
          Upcaster.make({
            from: { type: "Legacy", version: 1 },
            to: [{ type: "AccountClosed", version: 1 }],
            upcast: () => [{ type: "AccountOpened", version: 1, data: { owner: "x", currency: "EUR" } }]
          })
        ]
      })
      yield* appendRaw("Legacy-1", [{ type: "Legacy", schemaVersion: 1, data: {} }])
      const error = yield* Effect.flip(readTyped(eventCodec, "Legacy-1"))
      assert.strictEqual(error._tag === "EventDecodeError" && error.reason, "UpcasterFailed")
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )

  it.effect("inconsistent declarations are configuration errors when the codec is made", () =>
    Effect.gen(function* () {
      const problemsOf = (options: Upcaster.CodecOptions<AccountEvent, typeof AccountEvent.Encoded>) =>
        Effect.map(Effect.flip(Upcaster.codec(options)), (error) => error.problems.join("\n"))
      const step = (type: string, from: number) => Upcaster.step({ type, from, upcast: (d) => d })
      assert.include(
        yield* problemsOf({
          events: AccountEvent,
          versions: { MoneyDeposited: 2 },
          upcasters: [step("MoneyDeposited", 1), step("MoneyDeposited", 1)]
        }),
        "two upcasters from MoneyDeposited v1"
      )
      assert.include(
        yield* problemsOf({
          events: AccountEvent,
          versions: { MoneyDeposited: 3 },
          upcasters: [step("MoneyDeposited", 2)]
        }),
        "no upcaster from MoneyDeposited v1"
      )
      assert.include(
        yield* problemsOf({
          events: AccountEvent,
          upcasters: [
            Upcaster.rename({ from: "A", to: "B", version: 1 }),
            Upcaster.rename({ from: "B", to: "A", version: 1 })
          ]
        }),
        "cycle"
      )
      assert.include(
        yield* problemsOf({
          events: AccountEvent,
          upcasters: [Upcaster.rename({ from: "Old", to: "Nowhere", version: 1 })]
        }),
        "targets Nowhere, an unknown event type"
      )
      assert.include(
        yield* problemsOf({
          events: AccountEvent,
          versions: { MoneyDeposited: 2 },
          upcasters: [step("MoneyDeposited", 1), step("MoneyDeposited", 2)]
        }),
        "not older than the current v2"
      )
      assert.include(
        yield* problemsOf({
          events: AccountEvent,
          versions: { AccountOpened: 3 },
          upcasters: [
            step("AccountOpened", 2),
            Upcaster.rename({ from: "Old", to: "AccountOpened", version: 1, toVersion: 2 })
          ]
        }),
        "no upcaster from AccountOpened v1"
      )
      assert.include(
        yield* problemsOf({ events: AccountEvent, versions: { Ghost: 2 } }),
        "Ghost, which is not an event type"
      )
      const untagged = Schema.Union(
        MoneyDeposited,
        Schema.Struct({ amount: Schema.Number })
      ) as unknown as typeof AccountEvent
      assert.include(yield* problemsOf({ events: untagged }), "tagged struct or class")
    })
  )

  it.effect("a tagged struct decodes field by field to what the whole schema gives, errors included", () =>
    Effect.gen(function* () {
      const Plain = Schema.TaggedStruct("Plain", { n: Schema.Number, note: Schema.optional(Schema.String) })
      const Refined = Schema.TaggedStruct("Refined", { n: Schema.Number }).pipe(
        Schema.filter((e) => e.n > 0, { message: () => "n must be positive" })
      )
      const Events = Schema.Union(Plain, Refined)
      const eventCodec = yield* Upcaster.codec({ events: Events })
      const stored = [
        { type: "Plain", schemaVersion: 1, data: { note: "a", extra: true, n: 1 } },
        { type: "Plain", schemaVersion: 1, data: { _tag: "Refined", n: 2 } },
        { type: "Refined", schemaVersion: 1, data: { n: 3 } },
        { type: "Refined", schemaVersion: 1, data: { n: -1 } },
        { type: "Plain", schemaVersion: 1, data: { n: "1" } }
      ]
      yield* appendRaw("Tagged-1", stored)
      const recorded = Chunk.toArray(
        yield* Stream.runCollect(Stream.flatMap(EventStore.EventStore, (store) => store.readStream("Tagged-1")))
      )
      const schemaSays = Schema.decodeUnknownEither(Events)
      for (const [i, event] of recorded.entries()) {
        const ours = eventCodec.decodeEither(event)
        const theirs = schemaSays({ ...(stored[i]!.data as object), _tag: stored[i]!.type })
        if (theirs._tag === "Right") {
          assert.deepStrictEqual(ours, Either.right([theirs.right]))
          // the keys in the schema's order (the tag first), the stored extra field dropped
          assert.deepStrictEqual(Object.keys((ours as Either.Right<any, any>).right[0]), Object.keys(theirs.right))
        } else {
          assert.strictEqual(ours._tag, "Left")
          assert.strictEqual(
            ((ours as Either.Left<Upcaster.EventDecodeError, any>).left.cause as Error).message,
            theirs.left.message
          )
        }
      }
      assert.deepStrictEqual(
        recorded.map((event) => Either.isRight(eventCodec.decodeEither(event))),
        [true, true, true, false, false]
      )
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )

  it.effect("encode then decode round-trips arbitrary values of every event schema (property)", () =>
    Effect.gen(function* () {
      const eventCodec = yield* makeCodec
      const arbitrary = Arbitrary.make(AccountEvent).filter((e) => !("amount" in e && Object.is(e.amount, -0)))
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(arbitrary, (event) =>
            Effect.runPromise(
              Effect.gen(function* () {
                const encoded = yield* eventCodec.encode(event)
                const store = yield* MemoryEventStore.make()
                yield* store.append("P-1", [yield* Event.make(encoded)])
                const [recorded] = Chunk.toArray(yield* Stream.runCollect(store.readStream("P-1")))
                // an optional field holding undefined is stored (and read back) absent
                const expected = "reason" in event && event.reason === undefined ? AccountClosed.make({}) : event
                assert.deepStrictEqual(yield* eventCodec.decode(recorded!), [expected])
              })
            )
          ),
          { numRuns: 200 }
        )
      )
    })
  )

  it("decodes a plain struct's data exactly as its schema does, whatever the data (property)", () => {
    // plain fields take the codec's field-by-field path; the union's other member (a literal union field) Schema's
    const Plain = Schema.TaggedStruct("Plain", {
      name: Schema.String,
      count: Schema.Number,
      ok: Schema.Boolean,
      kind: Schema.Literal("a")
    })
    const Other = Schema.TaggedStruct("Other", { kind: Schema.Literal("a", "b") })
    const Events = Schema.Union(Plain, Other)
    const eventCodec = Effect.runSync(Upcaster.codec({ events: Events }))
    const value = FastCheck.oneof(
      FastCheck.string(),
      FastCheck.double(),
      FastCheck.boolean(),
      FastCheck.constantFrom("a", "b", null, undefined),
      FastCheck.object({ maxDepth: 1 })
    )
    // mostly valid fields (so that most data decodes), sometimes any value, sometimes missing
    const field = <A>(valid: FastCheck.Arbitrary<A>) =>
      FastCheck.oneof({ arbitrary: valid, weight: 4 }, { arbitrary: value, weight: 1 })
    const fields = {
      extra: value,
      kind: field(FastCheck.constantFrom("a", "b")),
      ok: field(FastCheck.boolean()),
      count: field(FastCheck.double()),
      name: field(FastCheck.string())
    }
    const data = FastCheck.oneof(
      { arbitrary: FastCheck.record(fields, { requiredKeys: ["kind", "ok", "count", "name"] }), weight: 4 },
      { arbitrary: FastCheck.record(fields, { requiredKeys: [] }), weight: 1 }
    )
    FastCheck.assert(
      FastCheck.property(FastCheck.constantFrom("Plain", "Other"), data, (type, data) => {
        const recorded: Event.RecordedEvent = {
          eventId: "00000000-0000-7000-8000-000000000000",
          type,
          schemaVersion: 1,
          data,
          metadata: {},
          streamId: "Plain-1" as Event.StreamId,
          category: "Plain",
          version: 1,
          position: 1n,
          transaction: 1n,
          recordedAt: DateTime.unsafeMake(0)
        }
        const expected = Schema.decodeUnknownEither(Events)({ ...data, _tag: type })
        const decoded = eventCodec.decodeEither(recorded)
        assert.strictEqual(decoded._tag, expected._tag)
        if (Either.isRight(expected) && Either.isRight(decoded)) {
          assert.deepStrictEqual(decoded.right, [expected.right])
          // the same keys in the same order: the tag first, then the fields as declared
          assert.deepStrictEqual(Object.keys(decoded.right[0]!), Object.keys(expected.right))
        }
      }),
      { numRuns: 1000 }
    )
  })
})

describe("Upcaster.readAll", () => {
  it.effect("reads domain events in global order through the codec", () =>
    Effect.gen(function* () {
      const eventCodec = yield* makeCodec
      yield* appendRaw("Account-7", [{ type: "FundsAdded", schemaVersion: 1, data: { amount: "2" } }])
      yield* appendRaw("Other-1", [{ type: "AccountClosed", schemaVersion: 1, data: {} }])
      yield* appendRaw("Account-8", [{ type: "AccountOpened", schemaVersion: 1, data: { owner: "eve" } }])
      const read = yield* Upcaster.readAll(eventCodec, { categories: ["Account"] }).pipe(Stream.runCollect)
      assert.deepStrictEqual(
        Chunk.toArray(read).map((d) => ({ streamId: d.envelope.streamId as string, event: d.event })),
        [
          { streamId: "Account-7", event: MoneyDeposited.make({ amount: 2, currency: "EUR", reference: "" }) },
          { streamId: "Account-8", event: new AccountOpened({ owner: "eve", currency: "EUR" }) }
        ]
      )
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )
})
