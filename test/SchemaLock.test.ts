/**
 * The schema lock: a locked version edited in place (a field renamed, retyped, removed, made required,
 * nested or not) fails naming the type, version and field; compatible changes and new versions with an
 * upcaster pass; a locked version no longer read fails; snapshot and saga states likewise; the file
 * round-trips and is laid out as Prettier would.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as prettier from "prettier"
import * as Aggregate from "../src/Aggregate.js"
import * as CommandBus from "../src/CommandBus.js"
import * as Saga from "../src/Saga.js"
import * as SchemaLock from "../src/SchemaLock.js"
import * as Snapshot from "../src/Snapshot.js"
import * as Upcaster from "../src/Upcaster.js"
import { SchemaLockSpec } from "../src/testing/index.js"

const fields = {
  name: Schema.String,
  age: Schema.Number,
  nick: Schema.optional(Schema.String),
  address: Schema.Struct({ city: Schema.String, zip: Schema.String }),
  tags: Schema.Array(Schema.String),
  plan: Schema.Literal("free", "pro")
}
const Registered = Schema.TaggedStruct("Registered", fields)
const Left = Schema.TaggedStruct("Left", {})

/** The sources of a codec of `events` (with `versions` and `upcasters`). */
const sourcesOf = <A extends { readonly _tag: string }, I>(
  events: Schema.Schema<A, I>,
  options: { readonly versions?: Record<string, number>; readonly upcasters?: ReadonlyArray<Upcaster.Upcaster> } = {}
) => SchemaLock.sources({ codecs: { users: Effect.runSync(Upcaster.codec({ events, ...options })) } })

const base = sourcesOf(Schema.Union(Registered, Left))
const locked = Effect.runSync(SchemaLock.fromSources(base))

/** The breaking changes of `sources` against the base lock. */
const breaking = (sources: SchemaLock.Sources) => Effect.map(SchemaLock.compare(locked, sources), (c) => c.breaking)

/** `Registered` with its fields edited. */
const edited = (change: (f: typeof fields) => Record<string, Schema.Struct.Field>) =>
  sourcesOf(Schema.Union(Schema.TaggedStruct("Registered", change(fields)), Left) as unknown as Schema.Schema<any, any>)

describe("SchemaLock", () => {
  it.effect("the unchanged codecs match their lock exactly", () =>
    Effect.gen(function* () {
      const comparison = yield* SchemaLock.check(locked, base, { unlocked: "fail" })
      assert.deepStrictEqual([comparison.added, comparison.compatible, comparison.breaking], [[], [], []])
      assert.deepStrictEqual(Object.keys(locked.events), ["Registered", "Left"])
      // the stored data: no _tag, refinements and optionality kept
      const registered = locked.events.Registered!["1"]!
      assert.deepStrictEqual(registered.required, ["name", "age", "address", "tags", "plan"])
      assert.isFalse("_tag" in (registered.properties as object))
    })
  )

  it.effect("editing a locked version's field fails, naming the type, version and field", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, SchemaLock.Sources, string, RegExp]> = [
        [
          "rename",
          edited(({ name, ...f }) => ({ ...f, fullName: name })),
          "name",
          /^event Registered v1: field "name" was renamed to "fullName"/
        ],
        [
          "type change",
          edited((f) => ({ ...f, age: Schema.String })),
          "age",
          /^event Registered v1: field "age" changed from number to string/
        ],
        ["removal", edited(({ age: _, ...f }) => f), "age", /^event Registered v1: field "age" was removed/],
        [
          "optional to required",
          edited((f) => ({ ...f, nick: Schema.String })),
          "nick",
          /^event Registered v1: field "nick" became required \(it was optional\)/
        ],
        [
          "a required field added",
          edited((f) => ({ ...f, email: Schema.String })),
          "email",
          /^event Registered v1: field "email" was added as required/
        ],
        [
          "a nested field retyped",
          edited((f) => ({ ...f, address: Schema.Struct({ city: Schema.String, zip: Schema.Number }) })),
          "address.zip",
          /^event Registered v1: field "address.zip" changed from string to number/
        ],
        [
          "an array's items retyped",
          edited((f) => ({ ...f, tags: Schema.Array(Schema.Number) })),
          "tags[]",
          /^event Registered v1: field "tags\[\]" changed from string to number/
        ],
        [
          "a literal removed",
          edited((f) => ({ ...f, plan: Schema.Literal("free") })),
          "plan",
          /^event Registered v1: field "plan" changed from "free" \| "pro" to "free"/
        ],
        [
          "a refinement added",
          edited((f) => ({ ...f, age: Schema.Number.pipe(Schema.nonNegative()) })),
          "age",
          /^event Registered v1: field "age" changed from number to number \(minimum: 0\)/
        ]
      ]
      for (const [what, sources, field, message] of cases) {
        const changes = yield* breaking(sources)
        assert.strictEqual(changes.length, 1, `${what}: ${changes.map((c) => c.message).join("; ")}`)
        assert.deepInclude(changes[0], { kind: "event", name: "Registered", version: 1, field }, what)
        assert.match(changes[0]!.message, message, what)
        assert.match(changes[0]!.message, /add an upcaster|upcaster from v1/, what)
        const failure = yield* Effect.flip(SchemaLock.check(locked, sources))
        assert.strictEqual(failure._tag, "SchemaLockMismatch", what)
        if (failure._tag === "SchemaLockMismatch") assert.deepStrictEqual(failure.changes, changes, what)
      }
    })
  )

  it.effect("compatible changes pass, and are recorded in the updated lock", () =>
    Effect.gen(function* () {
      const sources = edited((f) => ({
        ...f,
        age: Schema.optional(Schema.Number),
        note: Schema.optional(Schema.String),
        plan: Schema.Literal("free", "pro", "team"),
        name: Schema.NullOr(Schema.String)
      }))
      const comparison = yield* SchemaLock.check(locked, sources)
      assert.deepStrictEqual(comparison.breaking, [])
      assert.deepStrictEqual(
        comparison.compatible.map((c) => c.message),
        [
          'event Registered v1: field "note" was added as optional',
          'event Registered v1: field "name" accepts more values (string | null)',
          'event Registered v1: field "age" became optional',
          'event Registered v1: field "plan" accepts more values ("free" | "pro" | "team")'
        ]
      )
      // not recorded yet: a strict check says so
      const stale = yield* Effect.flip(SchemaLock.check(locked, sources, { unlocked: "fail" }))
      assert.match(stale.message, /not yet recorded: write the lock/)
      yield* SchemaLock.check(comparison.lock, sources, { unlocked: "fail" })
      // and from the recorded lock, removing the optional field again breaks (stored events may have it)
      const back = yield* SchemaLock.compare(comparison.lock, base)
      assert.isTrue(back.breaking.some((c) => c.field === "note" && /was removed/.test(c.message)))
    })
  )

  it.effect("a new version with an upcaster from the locked one passes and is added", () =>
    Effect.gen(function* () {
      const RegisteredV2 = Schema.TaggedStruct("Registered", { ...fields, age: Schema.String })
      const sources = sourcesOf(Schema.Union(RegisteredV2, Left), {
        versions: { Registered: 2 },
        upcasters: [Upcaster.step({ type: "Registered", from: 1, upcast: (old) => ({ ...old, age: String(old.age) }) })]
      })
      const comparison = yield* SchemaLock.check(locked, sources)
      assert.deepStrictEqual(comparison.added, ["event Registered v2"])
      assert.deepStrictEqual(Object.keys(comparison.lock.events.Registered!), ["1", "2"])
      // v1 stays locked as it was: it is history
      assert.deepStrictEqual(comparison.lock.events.Registered!["1"], locked.events.Registered!["1"])
      const strict = yield* Effect.flip(SchemaLock.check(locked, sources, { unlocked: "fail" }))
      assert.match(strict.message, /event Registered v2 is not in the lock/)
      yield* SchemaLock.check(comparison.lock, sources, { unlocked: "fail" })
      // editing v2 in place once it is locked fails like v1
      const v2Edited = sourcesOf(
        Schema.Union(Schema.TaggedStruct("Registered", { ...fields, age: Schema.Boolean }), Left),
        {
          versions: { Registered: 2 },
          upcasters: [Upcaster.step({ type: "Registered", from: 1, upcast: (old) => old })]
        }
      )
      const changes = (yield* SchemaLock.compare(comparison.lock, v2Edited)).breaking
      assert.deepStrictEqual(
        changes.map((c) => [c.name, c.version, c.field]),
        [["Registered", 2, "age"]]
      )
    })
  )

  it.effect("older versions declared by Upcaster.schema are locked too, and their schema is checked", () =>
    Effect.gen(function* () {
      const atV2 = (v1: Schema.Schema<any, any>) =>
        sourcesOf(Schema.TaggedStruct("Paid", { cents: Schema.Int }), {
          versions: { Paid: 2 },
          upcasters: [
            Upcaster.schema({
              type: "Paid",
              fromVersion: 1,
              from: v1,
              to: Schema.Struct({ cents: Schema.Int }),
              transform: (old: { readonly amount: number }) => ({ cents: Math.round(old.amount * 100) })
            })
          ]
        })
      const lock = yield* SchemaLock.fromSources(atV2(Schema.Struct({ amount: Schema.Number })))
      assert.deepStrictEqual(Object.keys(lock.events.Paid!), ["1", "2"])
      assert.deepStrictEqual(lock.events.Paid!["1"]!.required, ["amount"])
      const changes = (yield* SchemaLock.compare(lock, atV2(Schema.Struct({ amount: Schema.String })))).breaking
      assert.deepStrictEqual(
        changes.map((c) => [c.name, c.version, c.field]),
        [["Paid", 1, "amount"]]
      )
      assert.match(changes[0]!.message, /the upcaster from v1 no longer reads what is stored/)
    })
  )

  it.effect("a locked version no longer read (type removed, version gone back) fails; a drop upcaster passes", () =>
    Effect.gen(function* () {
      const removed = yield* breaking(sourcesOf(Registered))
      assert.deepStrictEqual(
        removed.map((c) => [c.name, c.version]),
        [["Left", 1]]
      )
      assert.match(removed[0]!.message, /event Left v1 is locked, but no codec reads Left nor upcasts from it/)
      assert.deepStrictEqual(
        yield* breaking(sourcesOf(Registered, { upcasters: [Upcaster.drop({ type: "Left", version: 1 })] })),
        []
      )
      const renamed = Schema.TaggedStruct("Departed", {})
      assert.deepStrictEqual(
        yield* breaking(
          sourcesOf(Schema.Union(Registered, renamed), {
            upcasters: [Upcaster.rename({ from: "Left", to: "Departed", version: 1 })]
          })
        ),
        []
      )
      // a lock at v2 and codecs at v1: the v2 events stored would not decode
      const atV2 = yield* SchemaLock.compare(
        { ...locked, events: { ...locked.events, Left: { "2": { type: "object" } } } },
        base
      )
      assert.match(
        atV2.breaking[0]!.message,
        /event Left v2 is locked, but the codecs are at v1 with no upcaster from v2/
      )
      // the lock to write (forced) is a new baseline: the version no longer read is dropped
      assert.deepStrictEqual(Object.keys(atV2.lock.events.Left!), ["1"])
    })
  )

  it.effect("two codecs describing one version differently cannot be locked", () =>
    Effect.gen(function* () {
      const other = Effect.runSync(Upcaster.codec({ events: Schema.TaggedStruct("Left", { why: Schema.String }) }))
      const sources = SchemaLock.sources({
        codecs: { users: Effect.runSync(Upcaster.codec({ events: Left })), audit: other }
      })
      const error = yield* Effect.flip(SchemaLock.fromSources(sources))
      assert.match(error.message, /codec users and codec audit describe Left v1 differently/)
    })
  )

  it.effect("snapshot states: a changed locked version fails until the snapshot version is bumped", () =>
    Effect.gen(function* () {
      const decider = (state: Schema.Schema<any, any>, version: number) =>
        Aggregate.make({
          category: "Counter",
          events: Left,
          initialState: {},
          evolve: (s) => s,
          decide: () => [],
          snapshot: { state, version, strategy: Snapshot.everyNEvents(10) }
        })
      const v1 = SchemaLock.sources({ aggregates: [decider(Schema.Struct({ count: Schema.Number }), 1)] })
      const lock = yield* SchemaLock.fromSources(v1)
      assert.deepStrictEqual(Object.keys(lock.snapshots.Counter!), ["1"])
      const changed = Schema.Struct({ count: Schema.String })
      const error = yield* Effect.flip(
        SchemaLock.check(lock, SchemaLock.sources({ aggregates: [decider(changed, 1)] }))
      )
      assert.strictEqual(error._tag, "SchemaLockMismatch")
      assert.match(
        error.message,
        /snapshot state of Counter v1: field "count" changed from number to string.*bump the snapshot version/
      )
      const bumped = yield* SchemaLock.check(lock, SchemaLock.sources({ aggregates: [decider(changed, 2)] }))
      assert.deepStrictEqual(bumped.added, ["snapshot state of Counter v2"])
      assert.deepStrictEqual(Object.keys(bumped.lock.snapshots.Counter!), ["1", "2"])
    })
  )

  it.effect("saga states: an incompatible change fails, an optional field passes", () =>
    Effect.gen(function* () {
      class Ping extends Schema.TaggedRequest<Ping>()("Ping", {
        failure: Schema.Never,
        success: Schema.Void,
        payload: { id: Schema.String }
      }) {}
      const saga = (state: Schema.Schema<any, any>) =>
        Saga.make({
          name: "greeter",
          events: Left,
          correlate: () => "one",
          state,
          initialState: { step: "new" },
          commands: [Ping as unknown as CommandBus.CommandClass],
          react: (s) => ({ state: s })
        })
      const lock = yield* SchemaLock.fromSources(
        SchemaLock.sources({ sagas: [saga(Schema.Struct({ step: Schema.Literal("new", "done") }))] })
      )
      const error = yield* Effect.flip(
        SchemaLock.check(lock, SchemaLock.sources({ sagas: [saga(Schema.Struct({ step: Schema.Number }))] }))
      )
      assert.match(error.message, /state of saga greeter: field "step" changed from "new" \| "done" to number/)
      yield* SchemaLock.check(
        lock,
        SchemaLock.sources({
          sagas: [saga(Schema.Struct({ step: Schema.Literal("new", "done"), note: Schema.optional(Schema.String) }))]
        })
      )
    })
  )

  it.effect("classes, dates, bigints and recursive schemas are locked by their encoded form", () =>
    Effect.gen(function* () {
      interface Tree {
        readonly value: number
        readonly children: ReadonlyArray<Tree>
      }
      const Tree: Schema.Schema<Tree> = Schema.Struct({
        value: Schema.Number,
        children: Schema.Array(Schema.suspend((): Schema.Schema<Tree> => Tree))
      }).annotations({ identifier: "Tree" })
      class Planted extends Schema.TaggedClass<Planted>()("Planted", {
        at: Schema.DateTimeUtc,
        seeds: Schema.BigInt,
        tree: Tree
      }) {}
      const lock = yield* SchemaLock.fromSources(sourcesOf(Planted))
      const planted = lock.events.Planted!["1"]!
      assert.deepStrictEqual((planted.properties as Record<string, unknown>).at, { type: "string" })
      assert.deepStrictEqual((planted.properties as Record<string, unknown>).seeds, { type: "string" })
      assert.isDefined((planted.$defs as Record<string, unknown>).Tree)
      const again = yield* SchemaLock.parse(SchemaLock.format(lock))
      yield* SchemaLock.check(again, sourcesOf(Planted), { unlocked: "fail" })
    })
  )

  it.effect("the lock file round-trips, and Prettier leaves it as it is", () =>
    Effect.gen(function* () {
      const text = SchemaLock.format(locked)
      const parsed = yield* SchemaLock.parse(text)
      assert.deepStrictEqual(parsed, locked)
      assert.strictEqual(SchemaLock.format(parsed), text)
      const formatted = yield* Effect.promise(() => prettier.format(text, { parser: "json", printWidth: 120 }))
      assert.strictEqual(formatted, text)
      const invalid = yield* Effect.flip(SchemaLock.parse('{"lockVersion": 2}'))
      assert.match(invalid.message, /not a schema lock/)
      assert.match((yield* Effect.flip(SchemaLock.parse("{"))).message, /not JSON/)
    })
  )

  it.effect("the test kit fails with one line per change, and passes a matching lock", () =>
    Effect.gen(function* () {
      const text = SchemaLock.format(locked)
      yield* SchemaLockSpec.check(base, text, { unlocked: "fail" })
      yield* SchemaLockSpec.check(base, JSON.parse(text), { unlocked: "fail" })
      const failure = yield* Effect.flip(
        SchemaLockSpec.check(
          edited(({ age: _, ...f }) => ({ ...f, name: Schema.Number })),
          text
        )
      )
      assert.strictEqual(failure._tag, "SchemaLockSpecFailure")
      assert.deepStrictEqual(
        failure.message.split("\n").map((line) => line.replace(/:.*/, "")),
        ["the schemas do not match the lock", "  - event Registered v1", "  - event Registered v1"]
      )
      assert.match(failure.message, /field "age" was removed/)
      assert.match(failure.message, /field "name" changed from string to number/)
    })
  )
})
