/**
 * Strict JSON encoding for stored event data and metadata.
 *
 * `JSON.stringify` silently loses information (`undefined` properties vanish, `NaN` becomes `null`,
 * a `Date` becomes a string, a `Map` becomes `{}`) and throws on `bigint` and cycles. An event store must
 * not lose anything, so every value is checked first and the first problem is reported with its path.
 * Accepted: `null`, booleans, finite numbers, strings, arrays and plain objects of those.
 * Rejected on purpose, identically in every store: NUL characters and lone UTF-16 surrogates in strings
 * or keys (PostgreSQL's `jsonb` cannot hold them) and nesting deeper than {@link maxDepth}.
 *
 * @internal
 */
import * as Either from "effect/Either"

/** Deepest nesting accepted; deeper values are hostile or broken, and recursion on them could overflow. */
export const maxDepth = 64

/** The first reason a value is not storable JSON, with a JSONPath-like location. */
export interface JsonProblem {
  readonly path: string
  readonly problem: string
}

/** Serializes `value` to JSON text, or returns why it cannot be stored without loss. */
export const encode = (value: unknown): Either.Either<string, JsonProblem> => {
  const problem = check(value, "$", 0, new Set())
  return problem === undefined ? Either.right(JSON.stringify(value)) : Either.left(problem)
}

/** UTF-8 size of a JSON text, the unit of the store's size limits. */
export const byteLength = (json: string): number => Buffer.byteLength(json, "utf8")

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

const checkString = (s: string, path: string): JsonProblem | undefined => {
  if (s.includes("\u0000")) return { path, problem: "contains a NUL character" }
  if (loneSurrogate.test(s)) return { path, problem: "contains a lone UTF-16 surrogate" }
  return undefined
}

const check = (value: unknown, path: string, depth: number, ancestors: Set<object>): JsonProblem | undefined => {
  switch (typeof value) {
    case "boolean":
      return undefined
    case "string":
      return checkString(value, path)
    case "number":
      return Number.isFinite(value) ? undefined : { path, problem: `is the non-finite number ${value}` }
    case "object":
      break
    default:
      return { path, problem: `is a ${typeof value}, which JSON cannot represent` }
  }
  if (value === null) return undefined
  if (depth >= maxDepth) return { path, problem: `nests deeper than ${maxDepth} levels` }
  if (ancestors.has(value)) return { path, problem: "is a circular reference" }
  ancestors.add(value)
  const problem = Array.isArray(value)
    ? checkArray(value, path, depth, ancestors)
    : checkObject(value, path, depth, ancestors)
  ancestors.delete(value)
  return problem
}

const checkArray = (
  values: ReadonlyArray<unknown>,
  path: string,
  depth: number,
  ancestors: Set<object>
): JsonProblem | undefined => {
  for (let i = 0; i < values.length; i++) {
    // `i in values` is false for holes, which JSON.stringify would turn into null
    if (!(i in values)) return { path: `${path}[${i}]`, problem: "is a hole in a sparse array" }
    const problem = check(values[i], `${path}[${i}]`, depth + 1, ancestors)
    if (problem !== undefined) return problem
  }
  return undefined
}

const checkObject = (value: object, path: string, depth: number, ancestors: Set<object>): JsonProblem | undefined => {
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) {
    const name = (proto?.constructor?.name as string | undefined) ?? "unknown"
    return { path, problem: `is a ${name} instance, not a plain object` }
  }
  if (Object.getOwnPropertySymbols(value).length > 0) return { path, problem: "has symbol keys" }
  for (const [key, child] of Object.entries(value)) {
    const childPath = `${path}.${key}`
    const keyProblem = checkString(key, childPath)
    if (keyProblem !== undefined) return { path: childPath, problem: `key ${keyProblem.problem}` }
    const problem = check(child, childPath, depth + 1, ancestors)
    if (problem !== undefined) return problem
  }
  return undefined
}
