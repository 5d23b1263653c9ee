/**
 * The KeyStore conformance suite: a subject's data key is made once (also by concurrent callers) and kept;
 * lookups return only the keys of subjects not erased; erasing is for good and idempotent; bad subject ids
 * are refused. Then crypto-shredding end to end on the implementation's event store: personal fields are
 * stored sealed, read in clear, and read as erased (the rest of the event as usual) once the subject is
 * erased, while the aggregate keeps handling commands. `suite(name, layer)` registers it against one
 * implementation, with the event store of the same backend.
 */
import { assert, describe, layer } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Aggregate from "../../src/Aggregate.js"
import * as EventStore from "../../src/EventStore.js"
import * as KeyStore from "../../src/KeyStore.js"
import * as Personal from "../../src/Personal.js"
import * as Upcaster from "../../src/Upcaster.js"
import { uniqueCategory } from "../support/ids.js"

const subjectId = Effect.sync(() => `subject-${randomBytes(6).toString("hex")}`)

const hex = (key: KeyStore.DataKey) => Buffer.from(Redacted.value(key)).toString("hex")

const Registered = Schema.TaggedStruct("Registered", {
  customerId: Schema.String,
  email: Personal.field(Schema.String, { subject: "customerId", erased: "[erased]" }),
  plan: Schema.String
})
const Upgraded = Schema.TaggedStruct("Upgraded", { plan: Schema.String })

/** A customer whose e-mail is personal data of the customer. */
export const customer = (category: string) =>
  Aggregate.make({
    category,
    events: Schema.Union(Registered, Upgraded),
    initialState: { email: "", plan: "", events: 0 },
    evolve: (state, event) =>
      event._tag === "Registered"
        ? { email: event.email, plan: event.plan, events: state.events + 1 }
        : { ...state, plan: event.plan, events: state.events + 1 },
    decide: (command: {
      readonly register?: { readonly id: string; readonly email: string }
      readonly plan: string
    }) =>
      command.register === undefined
        ? [Upgraded.make({ plan: command.plan })]
        : [Registered.make({ customerId: command.register.id, email: command.register.email, plan: command.plan })]
  })

export const suite = (name: string, keys: Layer.Layer<KeyStore.KeyStore | EventStore.EventStore, unknown>) =>
  describe(`KeyStore: ${name}`, () => {
    layer(keys, { timeout: 60_000 })((it) => {
      it.effect("makes a subject's key once and keeps it", () =>
        Effect.gen(function* () {
          const store = yield* KeyStore.KeyStore
          const subject = yield* subjectId
          const first = yield* store.dataKey(subject)
          assert.strictEqual(Redacted.value(first).length, 32)
          assert.strictEqual(hex(yield* store.dataKey(subject)), hex(first))
          const other = yield* store.dataKey(yield* subjectId)
          assert.notStrictEqual(hex(other), hex(first))
          assert.isFalse(yield* store.isErased(subject))
          // a key prints as redacted
          assert.notInclude(String(first), hex(first))
        })
      )

      it.effect("concurrent first uses of a subject end with one key", () =>
        Effect.gen(function* () {
          const store = yield* KeyStore.KeyStore
          const subject = yield* subjectId
          const keys = yield* Effect.all(
            Array.from({ length: 8 }, () => store.dataKey(subject)),
            {
              concurrency: "unbounded"
            }
          )
          assert.strictEqual(new Set(keys.map(hex)).size, 1)
          const found = yield* store.dataKeys([subject])
          assert.strictEqual(hex(found.get(subject)!), hex(keys[0]!))
        })
      )

      it.effect("looks keys up in one call: known subjects only, erased ones left out", () =>
        Effect.gen(function* () {
          const store = yield* KeyStore.KeyStore
          const [a, b, unknown] = [yield* subjectId, yield* subjectId, yield* subjectId]
          const keyA = yield* store.dataKey(a)
          yield* store.dataKey(b)
          yield* store.erase(b)
          const found = yield* store.dataKeys([a, b, unknown, a])
          assert.deepStrictEqual([...found.keys()], [a])
          assert.strictEqual(hex(found.get(a)!), hex(keyA))
          assert.strictEqual((yield* store.dataKeys([])).size, 0)
        })
      )

      it.effect("erasing is for good: no key is handed out again, and erasing again changes nothing", () =>
        Effect.gen(function* () {
          const store = yield* KeyStore.KeyStore
          const [subject, unknown] = [yield* subjectId, yield* subjectId]
          yield* store.dataKey(subject)
          yield* store.erase(subject)
          yield* store.erase(subject)
          assert.isTrue(yield* store.isErased(subject))
          const error = yield* Effect.flip(store.dataKey(subject))
          assert.strictEqual(error.reason, "SubjectErased")
          assert.strictEqual(error.subject, subject)
          // an unknown subject erased is remembered too
          yield* store.erase(unknown)
          assert.isTrue(yield* store.isErased(unknown))
          assert.strictEqual((yield* Effect.flip(store.dataKey(unknown))).reason, "SubjectErased")
        })
      )

      it.effect("refuses an empty or too long subject id", () =>
        Effect.gen(function* () {
          const store = yield* KeyStore.KeyStore
          for (const subject of ["", "x".repeat(KeyStore.maxSubjectLength + 1), "a\u0000b"]) {
            assert.strictEqual((yield* Effect.flip(store.dataKey(subject))).reason, "InvalidSubject")
            assert.strictEqual((yield* Effect.flip(store.erase(subject))).reason, "InvalidSubject")
          }
        })
      )

      it.effect("personal fields: stored sealed, read in clear, read as erased after the erasure", () =>
        Effect.gen(function* () {
          const keyStore = yield* KeyStore.KeyStore
          const events = yield* EventStore.EventStore
          const category = yield* uniqueCategory
          const [alice, bob] = [yield* subjectId, yield* subjectId]
          const decider = customer(category)
          const handle = Aggregate.handler(decider)
          const aliceMail = `alice-${alice}@example.com`
          const bobMail = `bob-${bob}@example.com`
          yield* handle(alice, { register: { id: alice, email: aliceMail }, plan: "free" })
          yield* handle(bob, { register: { id: bob, email: bobMail }, plan: "free" })

          const stored = yield* events.readStream(`${category}-${alice}`).pipe(Stream.runCollect)
          const json = JSON.stringify(Chunk.toReadonlyArray(stored).map((e) => e.data))
          assert.notInclude(json, aliceMail)
          assert.include(json, alice) // the subject id names the key
          assert.isTrue(Personal.isSealed((Chunk.unsafeGet(stored, 0).data as { readonly email: unknown }).email))

          const read = (id: string) =>
            Upcaster.readStream(decider.codec, `${category}-${id}`).pipe(
              Stream.map((d) => d.event),
              Stream.runCollect,
              Effect.map(Chunk.toReadonlyArray)
            )
          assert.deepStrictEqual(yield* read(alice), [
            Registered.make({ customerId: alice, email: aliceMail, plan: "free" })
          ])

          yield* keyStore.erase(alice)
          assert.deepStrictEqual(yield* read(alice), [
            Registered.make({ customerId: alice, email: "[erased]", plan: "free" })
          ])
          assert.deepStrictEqual(yield* read(bob), [Registered.make({ customerId: bob, email: bobMail, plan: "free" })])

          // the aggregate keeps working: loading decodes, events without personal fields are appended
          const result = yield* handle(alice, { plan: "pro" })
          assert.strictEqual(result.version, 2)
          // new personal data of an erased subject is refused, typed
          const refused = yield* Effect.flip(handle(alice, { register: { id: alice, email: aliceMail }, plan: "x" }))
          assert.strictEqual(refused._tag, "EventEncodeError")
          assert.notInclude(refused.message, aliceMail)
        })
      )
    })
  })
