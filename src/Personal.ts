/**
 * Personal fields, for crypto-shredding: a field of an event (or of a snapshotted state) marked with
 * {@link field} is stored sealed (AES-256-GCM, a fresh nonce per value) with the data key of the subject
 * it belongs to, named by another field of the same struct. Erasing the subject (`KeyStore.erase`) makes
 * every such value unreadable: reads then decode the field to its declared erased value, and the rest of
 * the event as usual. The codec (`Upcaster.codec`) and snapshots seal and open these fields around their
 * Schema; the keys come from the `KeyStore` service in context.
 *
 * What it does not do: rewrite stored events (a value sealed stays stored, unreadable), nor hide who the
 * subject is (its id is stored in clear beside each sealed value, as the key's name).
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import type * as Event from "./Event.js"
import * as Crypto from "./internal/crypto.js"
import * as KeyStore from "./KeyStore.js"

/** The annotation {@link field} puts on a personal field's Schema. */
export const PersonalAnnotationId: unique symbol = Symbol.for("effect-eventsourcing/Personal")

/** Options of {@link field}. */
export interface FieldOptions<A> {
  /** The sibling field (of the same struct) holding the data subject's id, a string. */
  readonly subject: string
  /** What the field reads as once the subject is erased (its key deleted). */
  readonly erased: A
}

/**
 * Marks a field of an event or state struct as personal data of the subject named by the sibling field
 * `options.subject`: stored sealed with the subject's data key, read as `options.erased` once the subject
 * was erased. The field keeps its type; any Schema (without requirements) can be wrapped, optional fields
 * too (`Schema.optional(Personal.field(...))`: an absent value stays absent).
 *
 * Sealing happens in the codec, after the Schema's encoding (the sealed text is the JSON of the encoded
 * value), and opening before decoding and before upcasters: an upcaster sees personal values in clear, or,
 * for an erased subject, the sealed envelope ({@link isSealed}), which it should pass along as it is.
 *
 * The subject field may be optional (`Schema.optional`): a value whose subject field is absent has no
 * subject and is stored in clear (for data that names a person only when one is known); a required subject
 * field always seals.
 *
 * **Gotchas**: only top-level fields of a struct (or of the structs of a union) are found; a personal
 * field's own decoding errors never show its value, as parse errors usually do.
 */
export const field = <A, I>(self: Schema.Schema<A, I>, options: FieldOptions<A>): Schema.Schema<A, I> => {
  const decode = ParseResult.decodeUnknown(self)
  const encode = ParseResult.encodeUnknown(self)
  const refused = (what: string) => `a personal value (of subject field ${options.subject}) does not ${what}`
  const hidden = (ast: SchemaAST.AST, what: string) => (_: ParseResult.ParseIssue) =>
    new ParseResult.Type(ast, "[personal]", refused(what))
  // what is read: the value's encoded form once opened, or still sealed; described so (the schema lock
  // sees the inner type), and with a message that never shows the value
  const stored = Schema.Union(Schema.encodedSchema(self), SealedSchema).annotations({
    message: () => ({ message: refused("decode"), override: true })
  })
  return Schema.transformOrFail(stored, Schema.typeSchema(self), {
    strict: true,
    decode: (value, _, ast) =>
      isSealed(value)
        ? ParseResult.succeed(options.erased)
        : ParseResult.mapError(decode(value), hidden(ast, "decode")),
    encode: (value, _, ast) => ParseResult.mapError(encode(value), hidden(ast, "encode"))
  }).annotations({ [PersonalAnnotationId]: { subject: options.subject } }) as unknown as Schema.Schema<A, I>
}

/** How a sealed value is stored: the subject's id and base64 of nonce, ciphertext and tag. */
export interface Sealed {
  readonly $personal: 1
  readonly subject: string
  readonly sealed: string
}

const SealedSchema = Schema.Struct({ $personal: Schema.Literal(1), subject: Schema.String, sealed: Schema.String })

/** Whether a stored value is a sealed personal value (still sealed: its subject is erased, or not opened yet). */
export const isSealed = (value: unknown): value is Sealed =>
  typeof value === "object" &&
  value !== null &&
  (value as Sealed).$personal === 1 &&
  typeof (value as Sealed).subject === "string" &&
  typeof (value as Sealed).sealed === "string"

/** A personal field of a struct, and the field holding its subject. */
export interface PersonalField {
  readonly name: string
  readonly subject: string
  /** The subject field is optional (`Schema.optional`): a value without a subject is stored in clear. */
  readonly optionalSubject?: boolean
}

/**
 * The personal fields of a Schema's structs, by the struct's `_tag` (`undefined` for untagged structs),
 * with the problems of the declaration (a subject field that the struct does not have).
 */
export const fieldsOf = (
  schema: Schema.Schema.Any
): {
  readonly byTag: ReadonlyMap<string | undefined, ReadonlyArray<PersonalField>>
  readonly problems: ReadonlyArray<string>
} => {
  const byTag = new Map<string | undefined, Array<PersonalField>>()
  const problems: Array<string> = []
  for (const struct of structsOf(schema.ast)) {
    const names = new Set(struct.propertySignatures.map((p) => p.name))
    const tagged = struct.propertySignatures.find((p) => p.name === "_tag")
    const tag = tagged !== undefined && SchemaAST.isLiteral(tagged.type) ? String(tagged.type.literal) : undefined
    const fields: Array<PersonalField> = []
    for (const property of struct.propertySignatures) {
      const subject = personalSubject(property.type)
      if (subject === undefined || typeof property.name !== "string") continue
      if (!names.has(subject)) {
        problems.push(`the personal field ${property.name} of ${tag ?? "a struct"} names ${subject}, not a field there`)
      } else if (personalSubject(struct.propertySignatures.find((p) => p.name === subject)!.type) !== undefined) {
        problems.push(`the subject field ${subject} of ${tag ?? "a struct"} is personal itself: it names the key`)
      }
      const subjectField = struct.propertySignatures.find((p) => p.name === subject)
      fields.push({ name: property.name, subject, optionalSubject: subjectField?.isOptional === true })
    }
    if (fields.length > 0) byTag.set(tag, [...(byTag.get(tag) ?? []), ...fields])
  }
  return { byTag, problems }
}

/**
 * Seals the personal `fields` of encoded `data` (a JSON object) with their subjects' data keys, made if
 * missing. Fails with `InvalidSubject` if a subject field does not hold a subject id, `SubjectErased` for
 * an erased subject. A field whose subject field is declared optional and absent has no subject: it stays
 * in clear. Needs a `KeyStore` in context when a value is sealed (a missing one is a wiring bug: a defect);
 * data without a personal value to seal needs none.
 */
export const seal = (
  data: Readonly<Record<string, unknown>>,
  fields: ReadonlyArray<PersonalField>
): Effect.Effect<Readonly<Record<string, unknown>>, KeyStore.KeyStoreError> => {
  const toSeal = fields.filter(
    ({ name, optionalSubject, subject }) =>
      data[name] !== undefined && !(optionalSubject === true && data[subject] === undefined)
  )
  if (toSeal.length === 0) return Effect.succeed(data)
  return Effect.flatMap(keyStore, (store) =>
    Effect.reduce(toSeal, data, (sealed, { name, subject: subjectField }) => {
      const value = sealed[name]
      const subject = sealed[subjectField]
      if (typeof subject !== "string") {
        return Effect.fail(
          new KeyStore.KeyStoreError({
            operation: "seal",
            reason: "InvalidSubject",
            cause: new Error(`the subject field ${subjectField} of personal field ${name} holds no string`)
          })
        )
      }
      return Effect.map(store.dataKey(subject), (key) => ({
        ...sealed,
        [name]: {
          $personal: 1,
          subject,
          sealed: Crypto.seal(Redacted.value(key), subject, Buffer.from(JSON.stringify(value), "utf8"))
        } satisfies Sealed
      }))
    })
  )
}

/**
 * Seals the personal fields of an encoded state (`encoded`, the encoding of `schema`): those of the struct
 * its `_tag` names, or of the untagged structs. For snapshots and saga states; the fields are found once
 * per Schema. Returns `encoded` itself when the Schema has no personal fields.
 */
export const sealState = (
  schema: Schema.Schema.Any,
  encoded: unknown
): Effect.Effect<unknown, KeyStore.KeyStoreError> => {
  let fields = stateFields.get(schema)
  if (fields === undefined) stateFields.set(schema, (fields = fieldsOf(schema).byTag))
  if (fields.size === 0 || typeof encoded !== "object" || encoded === null) return Effect.succeed(encoded)
  const tag = (encoded as { readonly _tag?: unknown })._tag
  const own = fields.get(typeof tag === "string" ? tag : undefined) ?? fields.get(undefined) ?? []
  return seal(encoded as Readonly<Record<string, unknown>>, own)
}

/** {@link open} of one value. */
export const openOne = (value: unknown): Effect.Effect<unknown, KeyStore.KeyStoreError> =>
  Effect.map(open([value]), (values) => values[0])

/**
 * Opens the sealed values found anywhere in `values` (one key lookup for all): each becomes the JSON value
 * it sealed, but for erased subjects (and values that do not open), which stay sealed and decode as their
 * field's erased value. Returns `values` itself when none holds a sealed value; never changes them in place.
 */
export const open = (values: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<unknown>, KeyStore.KeyStoreError> => {
  const subjects = new Set<string>()
  for (const value of values) collectSubjects(value, subjects)
  if (subjects.size === 0) return Effect.succeed(values)
  return Effect.flatMap(keyStore, (store) =>
    Effect.map(store.dataKeys([...subjects]), (keys) => values.map((value) => opened(value, keys)))
  )
}

/** {@link open} over recorded events' data: the same array when none holds a sealed value. */
export const openEvents = (
  events: ReadonlyArray<Event.RecordedEvent>
): Effect.Effect<ReadonlyArray<Event.RecordedEvent>, KeyStore.KeyStoreError> =>
  Effect.map(open(events.map((e) => e.data)), (data) =>
    data.every((d, i) => d === events[i]!.data) ? events : events.map((e, i) => ({ ...e, data: data[i] }))
  )

// ---------------------------------------------------------------------------------------------------
// internals
// ---------------------------------------------------------------------------------------------------

/** The personal fields of each state Schema, found once. */
const stateFields = new WeakMap<object, ReadonlyMap<string | undefined, ReadonlyArray<PersonalField>>>()

const keyStore: Effect.Effect<KeyStore.KeyStore["Type"]> = Effect.flatMap(
  Effect.serviceOption(KeyStore.KeyStore),
  Option.match({
    onSome: Effect.succeed,
    onNone: () =>
      Effect.dieMessage(
        "personal fields are sealed with keys from a KeyStore: provide one (KeyStore.layerMemory, SqlKeyStore.layer)"
      )
  })
)

/** The subject named by a property type's `Personal` annotation (on the type, or a member of its union). */
const personalSubject = (ast: SchemaAST.AST): string | undefined => {
  const annotation = ast.annotations[PersonalAnnotationId] as { readonly subject: string } | undefined
  if (annotation !== undefined) return annotation.subject
  return SchemaAST.isUnion(ast) ? ast.types.map(personalSubject).find((s) => s !== undefined) : undefined
}

/** The structs of a Schema: itself, the members of a union, the fields of a class, through refinements. */
const structsOf = (ast: SchemaAST.AST): ReadonlyArray<SchemaAST.TypeLiteral> => {
  if (SchemaAST.isTypeLiteral(ast)) return [ast]
  if (SchemaAST.isUnion(ast)) return ast.types.flatMap(structsOf)
  if (SchemaAST.isTransformation(ast) || SchemaAST.isRefinement(ast)) return structsOf(ast.from)
  if (SchemaAST.isSuspend(ast)) return structsOf(ast.f())
  return []
}

const collectSubjects = (value: unknown, subjects: Set<string>): void => {
  if (typeof value !== "object" || value === null) return
  if (isSealed(value)) {
    subjects.add(value.subject)
  } else if (Array.isArray(value)) {
    for (const item of value) collectSubjects(item, subjects)
  } else {
    for (const key in value) collectSubjects((value as Record<string, unknown>)[key], subjects)
  }
}

/** `value` with its sealed values opened where a key is known; the same object where nothing opened. */
const opened = (value: unknown, keys: ReadonlyMap<string, KeyStore.DataKey>): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (isSealed(value)) {
    const key = keys.get(value.subject)
    const plain = key === undefined ? undefined : Crypto.open(Redacted.value(key), value.subject, value.sealed)
    if (plain === undefined) return value
    // authenticated, so the JSON it sealed; kept sealed (read as erased) should it ever not parse
    const parsed = Either.try(() => JSON.parse(Buffer.from(plain).toString("utf8")) as unknown)
    return Either.isRight(parsed) ? parsed.right : value
  }
  if (Array.isArray(value)) {
    const items = value.map((item) => opened(item, keys))
    return items.every((item, i) => item === value[i]) ? value : items
  }
  let copy: Record<string, unknown> | undefined
  for (const key in value) {
    const before = (value as Record<string, unknown>)[key]
    const after = opened(before, keys)
    if (after !== before) (copy ??= { ...value })[key] = after
  }
  return copy ?? value
}
