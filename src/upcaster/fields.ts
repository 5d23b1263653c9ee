/**
 * Decoding a tagged struct's stored data for `Upcaster.codec`, built once per codec. The store keeps an
 * event's `_tag` as its type, not in its data, so the data is decoded against the struct's other fields
 * and the tag is put first after (three times faster than decoding a copy of the data with the tag added).
 *
 * A struct whose fields are all plain (required, string-named, typed by a string, number or boolean
 * keyword or a literal) is checked and copied field by field: several times cheaper than Schema's decoder,
 * and the same object (the tag, then the fields in declaration order; other properties dropped, as
 * Schema's default `onExcessProperty: "ignore"` does). Any other struct goes through Schema. Data a
 * decoder here refuses goes to the whole schema, so that errors are the schema's own.
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"

/** The event (its `_tag` first) decoded from stored data, or `undefined`: the whole schema must decide. */
export type DecodeFields = (data: object) => object | undefined

/** A decoder per `_tag` of the tagged structs among `members` (pairs of tag and member AST). */
export const decoders = (
  members: ReadonlyArray<readonly [string | undefined, SchemaAST.AST]>
): ReadonlyMap<string, DecodeFields> =>
  new Map(
    members.flatMap(([tag, member]) =>
      tag !== undefined && SchemaAST.isTypeLiteral(member) ? [[tag, decoderOf(tag, member)] as const] : []
    )
  )

const decoderOf = (tag: string, struct: SchemaAST.TypeLiteral): DecodeFields => {
  const fields = struct.propertySignatures.filter((p) => p.name !== "_tag")
  const checks = struct.indexSignatures.length === 0 ? fields.map(plainCheck) : []
  if (fields.length > 0 && checks.length === fields.length && checks.every((c) => c !== undefined)) {
    const plain = checks as ReadonlyArray<readonly [string, (value: unknown) => boolean]>
    return (data) => {
      const event: Record<string, unknown> = { _tag: tag }
      for (const [name, check] of plain) {
        const value = (data as Record<string, unknown>)[name]
        if (!check(value)) return undefined
        event[name] = value
      }
      return event
    }
  }
  const decode = Schema.decodeUnknownEither(
    Schema.make<object, unknown, never>(new SchemaAST.TypeLiteral(fields, struct.indexSignatures))
  )
  return (data) => {
    const decoded = decode(data)
    return Either.isRight(decoded) ? { _tag: tag, ...decoded.right } : undefined
  }
}

/** A plain field's name and check, or `undefined` if the field needs Schema. */
const plainCheck = (field: SchemaAST.PropertySignature): readonly [string, (value: unknown) => boolean] | undefined => {
  // `__proto__` would set the prototype of the event being built instead of a property
  if (field.isOptional || typeof field.name !== "string" || field.name === "__proto__") return undefined
  const type = field.type
  if (SchemaAST.isStringKeyword(type)) return [field.name, isString]
  if (SchemaAST.isNumberKeyword(type)) return [field.name, isNumber]
  if (SchemaAST.isBooleanKeyword(type)) return [field.name, isBoolean]
  if (SchemaAST.isLiteral(type)) {
    const literal = type.literal
    return [field.name, (value) => value === literal]
  }
  return undefined
}

const isString = (value: unknown) => typeof value === "string"
const isNumber = (value: unknown) => typeof value === "number"
const isBoolean = (value: unknown) => typeof value === "boolean"
