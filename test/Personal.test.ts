/**
 * Personal fields (crypto-shredding) through every reader on memory stores: the codec seals on encode and
 * opens on decode, an erased subject's fields read as their erased value (the rest of the event as usual)
 * in aggregates, projections (rebuilt), snapshots and upcast events, and no clear personal value or key
 * shows in logs or error messages.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Aggregate from "../src/Aggregate.js"
import * as CheckpointStore from "../src/CheckpointStore.js"
import * as CommandBus from "../src/CommandBus.js"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as KeyStore from "../src/KeyStore.js"
import * as ConsoleHandlers from "../src/http/internal/consoleHandlers.js"
import type * as EventBrowserHandlers from "../src/http/internal/eventBrowserHandlers.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Personal from "../src/Personal.js"
import * as Projection from "../src/Projection.js"
import * as Saga from "../src/Saga.js"
import * as SchemaLock from "../src/SchemaLock.js"
import * as SagaStore from "../src/SagaStore.js"
import * as Snapshot from "../src/Snapshot.js"
import { DeciderSpec, ProjectionSpec } from "../src/testing/index.js"
import * as Upcaster from "../src/Upcaster.js"
import { uniqueCategory } from "./support/ids.js"

const erased = "[erased]"
const Opened = Schema.TaggedStruct("Opened", {
  ownerId: Schema.String,
  owner: Personal.field(Schema.String, { subject: "ownerId", erased }),
  address: Schema.optional(Personal.field(Schema.String, { subject: "ownerId", erased })),
  currency: Schema.String
})
const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Number })
const AccountEvent = Schema.Union(Opened, Deposited)

const State = Schema.Struct({
  ownerId: Schema.String,
  owner: Personal.field(Schema.String, { subject: "ownerId", erased }),
  balance: Schema.Number
})

const account = (category: string) =>
  Aggregate.make({
    category,
    events: AccountEvent,
    initialState: { ownerId: "", owner: "", balance: 0 } as typeof State.Type,
    evolve: (state, event) =>
      event._tag === "Opened"
        ? { ownerId: event.ownerId, owner: event.owner, balance: 0 }
        : { ...state, balance: state.balance + event.amount },
    decide: (
      command: {
        readonly open?: { readonly id: string; readonly owner: string }
        readonly deposit?: number
        readonly inspect?: true
      },
      state
    ): Effect.Effect<ReadonlyArray<typeof AccountEvent.Type>, { readonly owner: string }> =>
      command.inspect === true
        ? Effect.fail({ owner: state.owner })
        : Effect.succeed(
            command.open !== undefined
              ? [
                  Opened.make({
                    ownerId: command.open.id,
                    owner: command.open.owner,
                    address: "1 Main St",
                    currency: "EUR"
                  })
                ]
              : [Deposited.make({ amount: command.deposit ?? 0 })]
          ),
    snapshot: { state: State, strategy: Snapshot.everyNEvents(1) }
  })

const stores = () =>
  Layer.mergeAll(
    MemoryEventStore.layer(),
    KeyStore.layerMemory,
    Snapshot.layerMemory(),
    CheckpointStore.layerMemory,
    Projection.layerRegistry
  )

/** Every log line (message and annotations) written while `effect` runs, at every level. */
const capturingLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const capture = Logger.make(({ annotations, cause, message }) => {
      lines.push(JSON.stringify({ message, annotations: [...annotations], cause: String(cause) }))
    })
    const result = yield* effect.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
    return { result, logs: lines.join("\n") }
  })

describe("Personal.field", () => {
  it("decodes a sealed value to the erased value, and hides a bad value in its errors", () => {
    const field = Personal.field(Schema.Number, { subject: "id", erased: -1 })
    assert.strictEqual(Schema.decodeUnknownSync(field)({ $personal: 1, subject: "s", sealed: "AAAA" }), -1)
    assert.strictEqual(Schema.decodeUnknownSync(field)(42), 42)
    const error = Schema.decodeUnknownEither(field)("secret-value-123")
    assert.isTrue(error._tag === "Left")
    assert.notInclude(String(error._tag === "Left" ? error.left.message : ""), "secret-value-123")
  })

  it("is checked by the codec: the subject field must be a field of the struct", () => {
    const Bad = Schema.TaggedStruct("Bad", { name: Personal.field(Schema.String, { subject: "missing", erased: "" }) })
    const exit = Effect.runSyncExit(Upcaster.codec({ events: Bad }))
    assert.isTrue(Exit.isFailure(exit))
    assert.match(String(exit), /personal field name of Bad names missing/)
  })

  it("is checked by the codec: the subject field must not be personal itself", () => {
    const Bad = Schema.TaggedStruct("Bad", {
      id: Personal.field(Schema.String, { subject: "id", erased: "" }),
      name: Personal.field(Schema.String, { subject: "id", erased: "" })
    })
    assert.match(String(Effect.runSyncExit(Upcaster.codec({ events: Bad }))), /subject field id of Bad is personal/)
  })

  it.effect("works in tagged classes, optional fields included", () =>
    Effect.gen(function* () {
      class Joined extends Schema.TaggedClass<Joined>()("Joined", {
        memberId: Schema.String,
        name: Personal.field(Schema.String, { subject: "memberId", erased }),
        phone: Schema.optional(Personal.field(Schema.String, { subject: "memberId", erased }))
      }) {}
      const codec = yield* Upcaster.codec({ events: Joined })
      const encoded = yield* codec.encode(new Joined({ memberId: "ivy", name: "Ivy", phone: "555" }))
      assert.notInclude(JSON.stringify(encoded.data), "Ivy")
      assert.notInclude(JSON.stringify(encoded.data), "555")
      const recorded = yield* recordedOf(encoded)
      assert.deepStrictEqual(yield* codec.decode(recorded), [
        new Joined({ memberId: "ivy", name: "Ivy", phone: "555" })
      ])
      yield* Effect.flatMap(KeyStore.KeyStore, (keys) => keys.erase("ivy"))
      assert.deepStrictEqual(yield* codec.decode(recorded), [
        new Joined({ memberId: "ivy", name: erased, phone: erased })
      ])
    }).pipe(Effect.provide(KeyStore.layerMemory))
  )

  it.effect("the schema lock sees a personal field's own type: retyping it is a breaking change", () =>
    Effect.gen(function* () {
      const sources = (name: Schema.Schema<any, any>) =>
        Effect.map(Upcaster.codec({ events: Schema.TaggedStruct("Named", { id: Schema.String, name }) }), (codec) =>
          SchemaLock.sources({ codecs: { named: codec } })
        )
      const lock = yield* SchemaLock.fromSources(
        yield* sources(Personal.field(Schema.String, { subject: "id", erased: "" }))
      )
      const retyped = yield* SchemaLock.compare(
        lock,
        yield* sources(Personal.field(Schema.Number, { subject: "id", erased: 0 }))
      )
      assert.deepStrictEqual(
        retyped.breaking.map((c) => c.field),
        ["name"]
      )
    })
  )

  it.effect("an optional subject field: sealed with a subject, in clear and without a KeyStore without one", () =>
    Effect.gen(function* () {
      const Named = Schema.TaggedStruct("Named", {
        holderId: Schema.optional(Schema.String),
        name: Personal.field(Schema.String, { subject: "holderId", erased })
      })
      const codec = yield* Upcaster.codec({ events: Named })
      // no subject: nobody to erase, stored in clear, and no key store asked for
      const anonymous = yield* codec.encode(Named.make({ name: "Anonymous Name" }))
      assert.deepStrictEqual(anonymous.data, { name: "Anonymous Name" })
      assert.deepStrictEqual(yield* codec.decode(yield* recordedOf(anonymous)), [
        Named.make({ name: "Anonymous Name" })
      ])
      // a subject: sealed, and erased with it
      const keys = yield* KeyStore.makeMemory
      const held = yield* Effect.provideService(
        codec.encode(Named.make({ holderId: "h1", name: "Held Name" })),
        KeyStore.KeyStore,
        keys
      )
      assert.isTrue(Personal.isSealed((held.data as Record<string, unknown>).name))
      yield* keys.erase("h1")
      assert.deepStrictEqual(
        yield* Effect.provideService(codec.decode(yield* recordedOf(held)), KeyStore.KeyStore, keys),
        [Named.make({ holderId: "h1", name: erased })]
      )
    })
  )

  it.effect("a codec with personal fields and no KeyStore is a wiring bug: a defect saying so", () =>
    Effect.gen(function* () {
      const codec = yield* Upcaster.codec({ events: AccountEvent })
      const exit = yield* Effect.exit(codec.encode(Opened.make({ ownerId: "a", owner: "Ann", currency: "EUR" })))
      assert.isTrue(Exit.isFailure(exit))
      assert.match(String(exit), /KeyStore/)
    })
  )
})

describe("Personal fields through the codec", () => {
  it.effect("are stored sealed, decoded in clear, and decoded as erased after the erasure", () =>
    Effect.gen(function* () {
      const codec = yield* Upcaster.codec({ events: AccountEvent })
      const keys = yield* KeyStore.KeyStore
      const event = Opened.make({ ownerId: "ann", owner: "Ann Smith", address: "1 Main St", currency: "EUR" })
      const encoded = yield* codec.encode(event)
      const json = JSON.stringify(encoded.data)
      assert.notInclude(json, "Ann Smith")
      assert.notInclude(json, "Main St")
      const data = encoded.data as Record<string, unknown>
      assert.isTrue(Personal.isSealed(data.owner) && Personal.isSealed(data.address))
      assert.strictEqual(data.currency, "EUR")
      // a fresh nonce per value: the same value seals differently each time
      const again = (yield* codec.encode(event)).data as Record<string, unknown>
      assert.notDeepEqual(again.owner, data.owner)

      const recorded = yield* recordedOf(encoded)
      assert.deepStrictEqual(yield* codec.decode(recorded), [event])
      // an absent optional personal field stays absent
      const bare = yield* codec.encode(Opened.make({ ownerId: "ann", owner: "Ann Smith", currency: "EUR" }))
      assert.notProperty(bare.data, "address")

      yield* keys.erase("ann")
      assert.deepStrictEqual(yield* codec.decode(recorded), [
        Opened.make({ ownerId: "ann", owner: erased, address: erased, currency: "EUR" })
      ])
      // decodeEither alone does not open: sealed fields read as erased, never as ciphertext
      const unopened = codec.decodeEither(recorded)
      assert.deepStrictEqual(unopened._tag === "Right" ? unopened.right : [], [
        Opened.make({ ownerId: "ann", owner: erased, address: erased, currency: "EUR" })
      ])
    }).pipe(Effect.provide(KeyStore.layerMemory))
  )

  it.effect("a key store that fails makes reads fail, transient, never read as erased", () =>
    Effect.gen(function* () {
      const memory = yield* KeyStore.makeMemory
      const down = new KeyStore.KeyStoreError({ operation: "dataKeys", reason: "Unavailable", transient: true })
      const codec = yield* Upcaster.codec({ events: AccountEvent })
      const recorded = yield* recordedOf(
        yield* Effect.provideService(
          codec.encode(Opened.make({ ownerId: "jo", owner: "Jo", currency: "EUR" })),
          KeyStore.KeyStore,
          memory
        )
      )
      const failing = KeyStore.KeyStore.of({ ...memory, dataKeys: () => Effect.fail(down) })
      const error = yield* Effect.flip(Effect.provideService(codec.decode(recorded), KeyStore.KeyStore, failing))
      assert.strictEqual(error._tag, "EventStoreError")
      assert.isTrue(error._tag === "EventStoreError" && error.transient)
      const store = yield* MemoryEventStore.make()
      yield* store.append("Acct-1", [yield* Event.make({ type: recorded.type, data: recorded.data })])
      const read = yield* Upcaster.readStream(codec, "Acct-1").pipe(
        Stream.runCollect,
        Effect.flip,
        Effect.provideService(EventStore.EventStore, store),
        Effect.provideService(KeyStore.KeyStore, failing)
      )
      assert.strictEqual(read._tag, "EventStoreError")
    })
  )

  it.effect("an upcaster moves a sealed field: read in clear before the erasure, erased after", () =>
    Effect.gen(function* () {
      const keys = yield* KeyStore.KeyStore
      const V1 = Schema.TaggedStruct("Registered", {
        customerId: Schema.String,
        fullName: Personal.field(Schema.String, { subject: "customerId", erased })
      })
      const V2 = Schema.TaggedStruct("Registered", {
        customerId: Schema.String,
        name: Personal.field(Schema.String, { subject: "customerId", erased }),
        source: Schema.String
      })
      const v1 = yield* Upcaster.codec({ events: V1 })
      const v2 = yield* Upcaster.codec({
        events: V2,
        versions: { Registered: 2 },
        upcasters: [
          Upcaster.step({
            type: "Registered",
            from: 1,
            upcast: ({ fullName, ...rest }) => ({ ...rest, name: fullName, source: "v1" })
          })
        ]
      })
      const recorded = yield* recordedOf(yield* v1.encode(V1.make({ customerId: "bob", fullName: "Bob Jones" })))
      assert.strictEqual(recorded.schemaVersion, 1)
      assert.deepStrictEqual(yield* v2.decode(recorded), [
        V2.make({ customerId: "bob", name: "Bob Jones", source: "v1" })
      ])
      yield* keys.erase("bob")
      assert.deepStrictEqual(yield* v2.decode(recorded), [V2.make({ customerId: "bob", name: erased, source: "v1" })])
    }).pipe(Effect.provide(KeyStore.layerMemory))
  )

  it.effect("no clear personal value or key in logs and decode errors", () =>
    Effect.gen(function* () {
      const keys = yield* KeyStore.KeyStore
      const secret = "Carol Secret-Name"
      const key = Redacted.value(yield* keys.dataKey("carol"))
      const keyTexts = [Buffer.from(key).toString("hex"), Buffer.from(key).toString("base64")]
      const codec = yield* Upcaster.codec({ events: AccountEvent })
      const encoded = yield* codec.encode(Opened.make({ ownerId: "carol", owner: secret, currency: "EUR" }))
      // another codec reads the owner as a number: its value does not decode
      const Strict = Schema.TaggedStruct("Opened", {
        ownerId: Schema.String,
        owner: Personal.field(Schema.Number, { subject: "ownerId", erased: 0 }),
        currency: Schema.Literal("USD")
      })
      const strict = yield* Upcaster.codec({ events: Strict })
      const recorded = yield* recordedOf(encoded)
      const { logs, result } = yield* capturingLogs(
        Effect.gen(function* () {
          const failed = yield* Effect.flip(strict.decode(recorded))
          const skipped = yield* strict.decode(recorded, "skip")
          yield* Effect.logDebug("decoded", yield* codec.decode(recorded).pipe(Effect.map(() => "ok")))
          yield* keys.erase("carol")
          const refused = yield* Effect.flip(
            codec.encode(Opened.make({ ownerId: "carol", owner: secret, currency: "EUR" }))
          )
          yield* Effect.logError("refused", refused)
          yield* Effect.logError("failed", failed)
          return { failed, skipped, refused }
        })
      )
      assert.strictEqual(result.failed._tag, "EventDecodeError")
      assert.deepStrictEqual(result.skipped, [])
      assert.strictEqual(result.refused._tag, "EventEncodeError")
      assert.include(logs, "skipping an undecodable event")
      for (const text of [logs, result.failed.message, result.refused.message]) {
        assert.notInclude(text, secret)
        for (const k of keyTexts) assert.notInclude(text, k)
      }
    }).pipe(Effect.provide(KeyStore.layerMemory))
  )
})

describe("Personal fields in aggregates, projections and snapshots", () => {
  it.live("after an erasure, aggregates load, snapshots read erased, a rebuilt projection reads erased", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const decider = account(category)
      const handle = Aggregate.handler(decider)
      const keys = yield* KeyStore.KeyStore
      const snapshots = yield* Snapshot.SnapshotStore
      const owners = yield* Ref.make(new Map<string, string>())
      const projection = Projection.make({
        name: `owners-${category}`,
        events: decider.codec,
        categories: [category],
        handle: (event) =>
          event._tag === "Opened" ? Ref.update(owners, (m) => new Map(m).set(event.ownerId, event.owner)) : Effect.void,
        truncate: Ref.set(owners, new Map())
      })
      const { logs } = yield* capturingLogs(
        Effect.gen(function* () {
          yield* handle("d", { open: { id: "dave", owner: "Dave Private" } })
          yield* handle("e", { open: { id: "erin", owner: "Erin Private" } })
          yield* handle("d", { deposit: 5 })

          // the snapshot is stored sealed, and loads in clear
          const stored = yield* snapshots.load(`${category}-d`)
          assert.isTrue(Option.isSome(stored))
          const state = Option.getOrThrow(stored).state as Record<string, unknown>
          assert.isTrue(Personal.isSealed(state.owner))
          assert.notInclude(JSON.stringify(state), "Dave Private")
          const loaded = yield* Snapshot.loadState(snapshots, decider.snapshot!, `${category}-d`)
          assert.strictEqual(Option.getOrThrow(loaded).state.owner, "Dave Private")

          yield* Projection.catchUp(projection)
          assert.deepStrictEqual([...(yield* Ref.get(owners))].sort(), [
            ["dave", "Dave Private"],
            ["erin", "Erin Private"]
          ])

          // the handler's state is the one decided on: clear before the erasure, erased from the next command on
          assert.deepStrictEqual(yield* Effect.flip(handle("d", { inspect: true })), { owner: "Dave Private" })
          yield* keys.erase("dave")
          assert.deepStrictEqual(yield* Effect.flip(handle("d", { inspect: true })), { owner: erased })
          const after = yield* Snapshot.loadState(snapshots, decider.snapshot!, `${category}-d`)
          assert.deepStrictEqual(Option.getOrThrow(after).state, { ownerId: "dave", owner: erased, balance: 5 })
          // the aggregate keeps working: it loads (snapshot or events) and appends
          const result = yield* handle("d", { deposit: 1 })
          assert.strictEqual(result.version, 3)
          const events = yield* Upcaster.readStream(decider.codec, `${category}-d`).pipe(
            Stream.map((d) => d.event),
            Stream.runCollect
          )
          assert.deepStrictEqual(
            Chunk.toReadonlyArray(events)[0],
            Opened.make({
              ownerId: "dave",
              owner: erased,
              address: erased,
              currency: "EUR"
            })
          )

          yield* Projection.rebuild(projection)
          yield* Projection.catchUp(projection)
          assert.deepStrictEqual([...(yield* Ref.get(owners))].sort(), [
            ["dave", erased],
            ["erin", "Erin Private"]
          ])
          assert.deepStrictEqual(yield* Projection.deadLetters(projection.name), [])
        })
      )
      assert.notInclude(logs, "Dave Private")
    }).pipe(Effect.provide(stores()))
  )
})

describe("Personal fields in the test kits", () => {
  it.effect("DeciderSpec compares events in clear, without a key store", () =>
    DeciderSpec.make(account("Spec"))
      .given([])
      .when({ open: { id: "gus", owner: "Gus" } })
      .then([Opened.make({ ownerId: "gus", owner: "Gus", address: "1 Main St", currency: "EUR" })])
  )

  it.effect("ProjectionSpec seals and opens with a memory key store when none is provided", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const projection = Projection.make({
        name: "owners",
        events: AccountEvent,
        handle: (event) => (event._tag === "Opened" ? Ref.update(seen, (s) => [...s, event.owner]) : Effect.void)
      })
      yield* ProjectionSpec.make(projection)
        .given([Opened.make({ ownerId: "hal", owner: "Hal", currency: "EUR" })])
        .then(Effect.void)
      assert.deepStrictEqual(yield* Ref.get(seen), ["Hal"])
    })
  )
})

describe("Personal fields in the console's state view", () => {
  it.effect("opened with the server's key store; erased without one, and after the erasure", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const decider = account(category)
      const store = yield* MemoryEventStore.make()
      const keys = yield* KeyStore.makeMemory
      yield* Aggregate.handler(decider)("k", { open: { id: "kim", owner: "Kim Private" } }).pipe(
        Effect.provideService(EventStore.EventStore, store),
        Effect.provideService(KeyStore.KeyStore, keys)
      )
      const config = {
        deciders: new Map([[category, ConsoleHandlers.stateView(decider, State)]])
      } as unknown as EventBrowserHandlers.Config
      const ownerShown = (withKeys: boolean) =>
        ConsoleHandlers.streamStates(config, `${category}-k` as Event.StreamId, {}).pipe(
          Effect.provideService(EventStore.EventStore, store),
          withKeys ? Effect.provideService(KeyStore.KeyStore, keys) : (effect) => effect,
          Effect.map((states) => (states.steps[0]!.state as { readonly owner: string }).owner)
        )
      assert.strictEqual(yield* ownerShown(true), "Kim Private")
      assert.strictEqual(yield* ownerShown(false), erased)
      yield* keys.erase("kim")
      assert.strictEqual(yield* ownerShown(true), erased)
    })
  )
})

describe("Personal fields in saga states", () => {
  it.effect("are stored sealed, read in clear, and read as erased after the erasure", () =>
    Effect.gen(function* () {
      const keys = yield* KeyStore.KeyStore
      const sagaStore = yield* SagaStore.SagaStore
      const Welcome = Schema.Struct({
        ownerId: Schema.String,
        owner: Personal.field(Schema.String, { subject: "ownerId", erased }),
        deposits: Schema.Number
      })
      const welcome = Saga.make({
        name: "welcome",
        events: AccountEvent,
        correlate: (event) => (event._tag === "Opened" ? event.ownerId : undefined),
        state: Welcome,
        initialState: { ownerId: "", owner: "", deposits: 0 },
        commands: [],
        react: (state, input) => ({
          state: input._tag === "Opened" ? { ownerId: input.ownerId, owner: input.owner, deposits: 0 } : state
        })
      })
      yield* welcome.apply("fay", Opened.make({ ownerId: "fay", owner: "Fay Private", currency: "EUR" }), "e1")
      const stored = Option.getOrThrow(yield* sagaStore.load("welcome", "fay"))
      assert.notInclude(JSON.stringify(stored.state), "Fay Private")
      assert.isTrue(Personal.isSealed((stored.state as { readonly owner: unknown }).owner))
      const read = Effect.map(Saga.instance(welcome, "fay"), (i) => Option.getOrThrow(i).state)
      assert.deepStrictEqual(yield* read, { ownerId: "fay", owner: "Fay Private", deposits: 0 })
      yield* keys.erase("fay")
      assert.deepStrictEqual(yield* read, { ownerId: "fay", owner: erased, deposits: 0 })
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          KeyStore.layerMemory,
          Layer.effect(SagaStore.SagaStore, SagaStore.makeMemory),
          CommandBus.layer({ groups: [] })
        )
      )
    )
  )
})

/** The recorded event an encoded event becomes once appended to a fresh stream of the memory store. */
const recordedOf = (encoded: Upcaster.Encoded) =>
  Effect.gen(function* () {
    const store = yield* MemoryEventStore.make()
    const category = yield* uniqueCategory
    yield* store.append(`${category}-1`, [yield* Event.make({ ...encoded })])
    const [recorded] = yield* store
      .readStream(`${category}-1`)
      .pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
    return recorded!
  }) as Effect.Effect<
    Event.RecordedEvent,
    EventStore.EventStoreError | EventStore.InvalidAppend | Event.InvalidStreamId
  >
