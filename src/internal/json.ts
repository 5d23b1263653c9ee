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

/**
 * Serializes `value` to JSON text, or returns why it cannot be stored without loss.
 *
 * Throws what a getter or a proxy in the value throws while it is read: the caller guards a whole append
 * once (see `appendPreparation`) and reports such a value with {@link unreadable}, since a guard per call
 * doubled the cost of encoding a small event.
 */
export const encode = (value: unknown): Either.Either<string, JsonProblem> => {
  if (isEmptyObject(value)) return emptyObject
  const found = check(value, 0, undefined)
  return found === undefined
    ? Either.right(JSON.stringify(value))
    : Either.left({ path: "$" + found.path.reverse().join(""), problem: found.problem })
}

/** The problem of a value that threw while it was read (a getter, a proxy): it cannot be stored either. */
export const unreadable = (cause: unknown): JsonProblem => ({
  path: "$",
  problem: `could not be read (reading it threw ${describeThrown(cause)})`
})

/** What was thrown, in a short line: for error details that must not grow with hostile input. */
export const describeThrown = (cause: unknown): string =>
  Either.getOrElse(
    // what was thrown may be as hostile as what threw it
    Either.try(() => {
      const text = cause instanceof Error ? `${String(cause.name)}: ${String(cause.message)}` : `a ${typeof cause}`
      return text.length > 200 ? `${text.slice(0, 200)}...` : text
    }),
    () => "an unreadable value"
  )

// the metadata of most events
const emptyObject = Either.right("{}")

const isEmptyObject = (value: unknown): boolean => {
  if (typeof value !== "object" || value === null || Object.getPrototypeOf(value) !== Object.prototype) return false
  for (const _ in value) return false
  return Object.getOwnPropertySymbols(value).length === 0
}

/** UTF-8 size of a JSON text, the unit of the store's size limits. */
export const byteLength = (json: string): number => Buffer.byteLength(json, "utf8")

/**
 * A problem found below a value: its location as path segments from the problem up (`.key`, `[i]`),
 * built only once a problem is found, so that checking a good value allocates no paths.
 */
interface Found {
  readonly path: Array<string>
  readonly problem: string
}

// one scan finds whether a string needs a closer look (most do not)
const suspect = /[\u0000\uD800-\uDFFF]/
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

const stringProblem = (s: string): string | undefined => {
  if (!suspect.test(s)) return undefined
  if (s.includes("\u0000")) return "contains a NUL character"
  if (loneSurrogate.test(s)) return "contains a lone UTF-16 surrogate"
  return undefined
}

const at = (found: Found | undefined, segment: string): Found | undefined => {
  found?.path.push(segment)
  return found
}

/**
 * The objects and arrays around a value, innermost first, for the cycle check: an immutable chain (one link
 * per container entered), so that a check that runs another one (a getter in the value) shares nothing.
 */
interface Enclosing {
  readonly value: object
  readonly outer: Enclosing | undefined
}

const check = (value: unknown, depth: number, enclosing: Enclosing | undefined): Found | undefined => {
  switch (typeof value) {
    case "boolean":
      return undefined
    case "string": {
      const problem = stringProblem(value)
      return problem === undefined ? undefined : { path: [], problem }
    }
    case "number":
      return Number.isFinite(value) ? undefined : { path: [], problem: `is the non-finite number ${value}` }
    case "object":
      break
    default:
      return { path: [], problem: `is a ${typeof value}, which JSON cannot represent` }
  }
  if (value === null) return undefined
  if (depth >= maxDepth) return { path: [], problem: `nests deeper than ${maxDepth} levels` }
  // at most `maxDepth` links: a scan is cheaper than a set here
  for (let outer = enclosing; outer !== undefined; outer = outer.outer) {
    if (outer.value === value) return { path: [], problem: "is a circular reference" }
  }
  const here: Enclosing = { value, outer: enclosing }
  return Array.isArray(value) ? checkArray(value, depth, here) : checkObject(value, depth, here)
}

const checkArray = (values: ReadonlyArray<unknown>, depth: number, here: Enclosing): Found | undefined => {
  for (let i = 0; i < values.length; i++) {
    // `i in values` is false for holes, which JSON.stringify would turn into null
    if (!(i in values)) return { path: [`[${i}]`], problem: "is a hole in a sparse array" }
    const found = check(values[i], depth + 1, here)
    if (found !== undefined) return at(found, `[${i}]`)
  }
  return undefined
}

const checkObject = (value: object, depth: number, here: Enclosing): Found | undefined => {
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) {
    const name = (proto?.constructor?.name as string | undefined) ?? "unknown"
    return { path: [], problem: `is a ${name} instance, not a plain object` }
  }
  if (Object.getOwnPropertySymbols(value).length > 0) return { path: [], problem: "has symbol keys" }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    const keyProblem = stringProblem(key)
    if (keyProblem !== undefined) return { path: [`.${key}`], problem: `key ${keyProblem}` }
    const found = check((value as Record<string, unknown>)[key], depth + 1, here)
    if (found !== undefined) return at(found, `.${key}`)
  }
  return undefined
}
