/**
 * The data keys of crypto-shredding: one AES-256 key per data subject (a customer, a user), with which
 * the subject's personal fields are sealed (see `Personal`). Erasing a subject deletes its key: every
 * value sealed with it becomes unreadable, and reads of those fields give their declared erased value,
 * while the events themselves stay in the log untouched.
 *
 * Implementations: {@link makeMemory} here, `SqlKeyStore` (effect-eventsourcing/sql) in the event store's
 * database, where keys are stored wrapped (sealed) with a master key the application supplies as a
 * `Redacted` value. Keys never leave this module's services in clear but as `Redacted` values, and no
 * error, log or span carries a key or a personal value.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Crypto from "./internal/crypto.js"

/** A subject's data key: 32 bytes, redacted (it prints as `<redacted>`). */
export type DataKey = Redacted.Redacted<Uint8Array>

/** Why a key store operation failed. */
export const KeyStoreErrorReason = Schema.Literal(
  /** the store could not be reached or refused the statement (see `transient`) */
  "Unavailable",
  /** the configured master key does not open the stored keys (or is not 32 bytes of base64) */
  "WrongMasterKey",
  /** a key was asked for to seal new data of a subject that was erased */
  "SubjectErased",
  /** a subject id that is empty, longer than {@link maxSubjectLength}, or holds a NUL */
  "InvalidSubject"
)
export type KeyStoreErrorReason = typeof KeyStoreErrorReason.Type

/**
 * A key store operation failed. Never carries a key or a personal value; `subject` is the data subject's
 * id (an identifier, not personal data in itself) when one subject is at fault.
 */
export class KeyStoreError extends Schema.TaggedError<KeyStoreError>()("KeyStoreError", {
  operation: Schema.String,
  reason: KeyStoreErrorReason,
  subject: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect),
  /** Whether the operation may pass if retried as is (a lost connection); decided where the failure entered. */
  transient: Schema.optionalWith(Schema.Boolean, { default: () => false })
}) {
  override get message() {
    const subject = this.subject === undefined ? "" : ` (subject ${JSON.stringify(this.subject)})`
    const cause =
      this.cause === undefined ? "" : `: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
    return `Key store ${this.operation} failed${subject}: ${this.reason}${cause}`
  }
}

/** Longest subject id (the SQL key column's size). */
export const maxSubjectLength = 255

/** Where the data keys live. */
export class KeyStore extends Context.Tag("effect-eventsourcing/KeyStore")<
  KeyStore,
  {
    /**
     * The data key of a subject, created if it has none (sealing). Concurrent calls for a new subject end
     * with one key, which all of them get. Fails with `SubjectErased` once the subject was erased.
     */
    readonly dataKey: (subject: string) => Effect.Effect<DataKey, KeyStoreError>
    /**
     * The data keys of the subjects that have one (opening): one lookup for a whole batch. An erased or
     * unknown subject is absent from the map.
     */
    readonly dataKeys: (subjects: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, DataKey>, KeyStoreError>
    /**
     * Deletes the subject's key, for good: every value sealed with it is unreadable from then on. The
     * subject is remembered as erased (so no new key is made for it). Idempotent; an unknown subject is
     * recorded as erased too.
     */
    readonly erase: (subject: string) => Effect.Effect<void, KeyStoreError>
    /** Whether the subject was erased. */
    readonly isErased: (subject: string) => Effect.Effect<boolean, KeyStoreError>
  }
>() {}

/** `Some` error if `subject` is not a usable subject id. */
export const checkSubject = (operation: string, subject: string): Option.Option<KeyStoreError> =>
  typeof subject === "string" &&
  subject.length > 0 &&
  subject.length <= maxSubjectLength &&
  // no store keeps a NUL in a text column
  !subject.includes("\u0000")
    ? Option.none()
    : Option.some(
        new KeyStoreError({
          operation,
          reason: "InvalidSubject",
          cause: new Error(`a subject id is a string of 1 to ${maxSubjectLength} characters, without NUL`)
        })
      )

/**
 * An in-memory key store (tests, the embedded default's demos): keys live as long as the service, so data
 * sealed with them is unreadable after a restart. Not for production.
 */
export const makeMemory: Effect.Effect<KeyStore["Type"]> = Effect.sync(() => {
  /** Each subject's key; `undefined`: erased. */
  const keys = new Map<string, DataKey | undefined>()
  const checked = <A>(operation: string, subject: string, f: () => Effect.Effect<A, KeyStoreError>) =>
    Option.match(checkSubject(operation, subject), { onNone: f, onSome: Effect.fail })
  return KeyStore.of({
    dataKey: (subject) =>
      checked("dataKey", subject, () => {
        if (!keys.has(subject)) keys.set(subject, Redacted.make(Crypto.newKey()))
        const key = keys.get(subject)
        return key === undefined
          ? Effect.fail(new KeyStoreError({ operation: "dataKey", reason: "SubjectErased", subject }))
          : Effect.succeed(key)
      }),
    dataKeys: (subjects) =>
      Effect.sync(() => {
        const found = new Map<string, DataKey>()
        for (const subject of subjects) {
          const key = keys.get(subject)
          if (key !== undefined) found.set(subject, key)
        }
        return found
      }),
    erase: (subject) =>
      checked("erase", subject, () =>
        // the key is dropped, not overwritten: a seal in flight with it must not use a zeroed key
        Effect.sync(() => void keys.set(subject, undefined))
      ),
    isErased: (subject) => Effect.sync(() => keys.has(subject) && keys.get(subject) === undefined)
  })
})

/** A fresh in-memory key store per Layer build. */
export const layerMemory: Layer.Layer<KeyStore> = Layer.effect(KeyStore, makeMemory)
