/**
 * The JSON Schemas of the schema lock: described from Effect Schemas (inlined, without annotations),
 * compared field by field (what every stored value survives, and what it may not), laid out as Prettier
 * lays out JSON. Private to `SchemaLock`.
 */
import * as Either from "effect/Either"
import * as JSONSchema from "effect/JSONSchema"
import type * as Schema from "effect/Schema"

/** A JSON Schema, as the lock keeps it: inlined (no `$ref` but for recursion), without annotations. */
export type JsonSchema = { readonly [key: string]: unknown }

/** The JSON Schema of a schema's encoded form (what `JSONSchema.make` describes), inlined; `undefined` (and a problem) if none. */
export const jsonSchemaOf = (
  schema: Schema.Schema<any, any>,
  what: string,
  problems: Array<string>
): JsonSchema | undefined => {
  const made = Either.try(() => JSONSchema.make(schema))
  if (Either.isLeft(made)) {
    problems.push(`${what} has no JSON Schema (annotate it with jsonSchema): ${String(made.left)}`)
    return undefined
  }
  const root = made.right as unknown as Record<string, unknown>
  const defs = (root.$defs ?? {}) as Record<string, unknown>
  const recursive: Record<string, unknown> = {}
  const inlined = inline(root, defs, new Set(), recursive) as Record<string, unknown>
  return Object.keys(recursive).length === 0 ? inlined : { ...inlined, $defs: recursive }
}

/** Annotations: they change no stored value. */
const annotations = new Set(["$schema", "$defs", "$id", "$comment", "title", "description", "examples", "default"])

/** Replaces `$ref`s by their definitions (kept as references only where a definition contains itself). */
const inline = (
  node: unknown,
  defs: Record<string, unknown>,
  expanding: ReadonlySet<string>,
  recursive: Record<string, unknown>
): unknown => {
  if (Array.isArray(node)) return node.map((n) => inline(n, defs, expanding, recursive))
  if (typeof node !== "object" || node === null) return node
  const record = node as Record<string, unknown>
  const ref = typeof record.$ref === "string" ? /^#\/\$defs\/(.+)$/.exec(record.$ref)?.[1] : undefined
  if (ref !== undefined && defs[ref] !== undefined) {
    if (expanding.has(ref)) {
      if (!(ref in recursive)) {
        recursive[ref] = null
        recursive[ref] = inline(defs[ref], defs, new Set([ref]), recursive)
      }
      return { $ref: record.$ref }
    }
    const { $ref: _, ...rest } = record
    const expanded = inline(defs[ref], defs, new Set([...expanding, ref]), recursive) as Record<string, unknown>
    return { ...expanded, ...(inline(rest, defs, expanding, recursive) as Record<string, unknown>) }
  }
  const result: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(record)) {
    if (annotations.has(key)) continue
    result[key] =
      key === "properties"
        ? mapValues(value, (v) => inline(v, defs, expanding, recursive))
        : inline(value, defs, expanding, recursive)
  }
  return result
}

const mapValues = (value: unknown, f: (v: unknown) => unknown): unknown =>
  typeof value === "object" && value !== null
    ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, f(v)]))
    : value

/** An event's schema without its `_tag` (the store keeps the tag as the type, not in the data). */
export const withoutTag = (schema: JsonSchema): JsonSchema => {
  if (!isRecord(schema.properties)) return schema
  const result: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(schema)) {
    if (key === "properties") result[key] = without(value as Record<string, unknown>, "_tag")
    else if (key === "required" && Array.isArray(value)) result[key] = value.filter((r) => r !== "_tag")
    else result[key] = value
  }
  return result
}

interface Difference {
  readonly field: string
  readonly message: string
}

/** The differences from a locked schema to a current one, split by whether every value of the locked one survives. */
export const diff = (locked: unknown, current: unknown) => {
  const breaking: Array<Difference> = []
  const compatible: Array<Difference> = []
  walk("", locked, current, breaking, compatible)
  return { breaking, compatible }
}

const walk = (
  path: string,
  a: unknown,
  b: unknown,
  breaking: Array<Difference>,
  compatible: Array<Difference>
): void => {
  if (equal(a, b)) return
  const where = path === "" ? "the schema" : `field ${JSON.stringify(path)}`
  if (isRecord(a) && isRecord(b)) {
    const { items: ai, properties: ap, required: ar, ...aRest } = a
    const { items: bi, properties: bp, required: br, ...bRest } = b
    if (isRecord(ap) && isRecord(bp) && equal(aRest, bRest)) {
      const aRequired = new Set(Array.isArray(ar) ? (ar as Array<string>) : [])
      const bRequired = new Set(Array.isArray(br) ? (br as Array<string>) : [])
      const at = (name: string) => (path === "" ? name : `${path}.${name}`)
      const removed = Object.keys(ap).filter((k) => !(k in bp))
      const added = Object.keys(bp).filter((k) => !(k in ap))
      // one field gone and one with the same schema come: a rename
      if (removed.length === 1 && added.length === 1 && equal(ap[removed[0]!], bp[added[0]!])) {
        breaking.push({
          field: at(removed[0]!),
          message: `field ${JSON.stringify(at(removed[0]!))} was renamed to ${JSON.stringify(at(added[0]!))}`
        })
      } else {
        for (const k of removed) breaking.push({ field: at(k), message: `field ${JSON.stringify(at(k))} was removed` })
        for (const k of added) {
          if (bRequired.has(k))
            breaking.push({
              field: at(k),
              message: `field ${JSON.stringify(at(k))} was added as required (stored data lacks it)`
            })
          else compatible.push({ field: at(k), message: `field ${JSON.stringify(at(k))} was added as optional` })
        }
      }
      for (const k of Object.keys(ap).filter((k) => k in bp)) {
        if (aRequired.has(k) && !bRequired.has(k)) {
          compatible.push({ field: at(k), message: `field ${JSON.stringify(at(k))} became optional` })
        } else if (!aRequired.has(k) && bRequired.has(k)) {
          breaking.push({ field: at(k), message: `field ${JSON.stringify(at(k))} became required (it was optional)` })
        }
        walk(at(k), ap[k], bp[k], breaking, compatible)
      }
      return
    }
    if (ai !== undefined && bi !== undefined && equal(aRest, bRest) && equal(ap, bp) && equal(ar, br)) {
      return walk(`${path}[]`, ai, bi, breaking, compatible)
    }
    // more literals, or more union members, and nothing else: every old value is still accepted
    if (Array.isArray(a.enum) && Array.isArray(b.enum) && equal(without(a, "enum"), without(b, "enum"))) {
      if (a.enum.every((x) => (b.enum as Array<unknown>).some((y) => equal(x, y)))) {
        compatible.push({ field: path, message: `${where} accepts more values (${brief(b)})` })
        return
      }
    }
    if (Array.isArray(b.anyOf) && equal(without(a, "anyOf"), without(b, "anyOf"))) {
      // a union that keeps every old member, or a schema that became one member of a union (`NullOr`)
      const old = Array.isArray(a.anyOf) ? a.anyOf : [a]
      if (old.every((x) => (b.anyOf as Array<unknown>).some((y) => equal(x, y)))) {
        compatible.push({ field: path, message: `${where} accepts more values (${brief(b)})` })
        return
      }
    }
    if (Array.isArray(b.anyOf) && !Array.isArray(a.anyOf) && b.anyOf.some((y) => equal(a, y))) {
      compatible.push({ field: path, message: `${where} accepts more values (${brief(b)})` })
      return
    }
  }
  breaking.push({ field: path, message: `${where} changed from ${brief(a)} to ${brief(b)}` })
}

const without = (record: Record<string, unknown>, key: string) => {
  const { [key]: _, ...rest } = record
  return rest
}

/** A short description of a schema for messages: `number`, `"a" | "b"`, `object`, `string | null`. */
const brief = (schema: unknown): string => {
  if (!isRecord(schema)) return JSON.stringify(schema)
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ")
  if (Array.isArray(schema.anyOf)) return schema.anyOf.map(brief).join(" | ")
  if (typeof schema.$ref === "string") return schema.$ref.replace(/^#\/\$defs\//, "")
  if (schema.type === "array" && schema.items !== undefined) return `array of ${brief(schema.items)}`
  const constraints = Object.keys(schema).filter((k) => k !== "type" && k !== "properties" && k !== "required")
  const base = typeof schema.type === "string" ? schema.type : JSON.stringify(schema).slice(0, 60)
  return constraints.length === 0
    ? base
    : `${base} (${constraints.map((k) => `${k}: ${JSON.stringify(schema[k])}`).join(", ")})`
}

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Deep equality of JSON values; object key order does not matter. */
export const equal = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => equal(x, b[i]))
  if (!isRecord(a) || !isRecord(b)) return false
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((k) => k in b && equal(a[k], b[k]))
}

/** JSON laid out as Prettier does: objects expanded, arrays of scalars on one line when it fits in 120 columns. */
export const layout = (value: unknown, indent: string, prefix: string): string => {
  const inner = `${indent}  `
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]"
    const scalars = value.every(
      (v) => typeof v !== "object" || v === null || (isRecord(v) && Object.keys(v).length === 0)
    )
    const flat = `[${value.map((v) => JSON.stringify(v)).join(", ")}]`
    // the line holding it: indentation, key, the array and a comma
    if (scalars && indent.length + prefix.length + flat.length + 1 <= 120) return flat
    return `[\n${value.map((v) => `${inner}${layout(v, inner, "")}`).join(",\n")}\n${indent}]`
  }
  if (isRecord(value)) {
    const entries = Object.entries(value)
    if (entries.length === 0) return "{}"
    return `{\n${entries
      .map(([k, v]) => {
        const key = `${JSON.stringify(k)}: `
        return `${inner}${key}${layout(v, inner, key)}`
      })
      .join(",\n")}\n${indent}}`
  }
  return JSON.stringify(value)
}
