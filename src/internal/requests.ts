/**
 * What the command bus and the query bus share: both route `Schema.TaggedRequest`s to handlers registered
 * by group, validate them at the boundary the same way, and describe failures the same way.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Json from "./json.js"

/** A request class (a `Schema.TaggedRequest`): a Schema of requests, with its success and failure Schemas. */
export interface RequestClass extends Schema.Schema.AnyNoContext {
  readonly _tag: string
  readonly success: Schema.Schema.Any
  readonly failure: Schema.Schema.All
}

/** A handler with its requirements provided. */
export type Handle = (request: Schema.TaggedRequest.All) => Effect.Effect<unknown, unknown>

/**
 * The Layer of a group's handlers, one per request class by tag: each call runs in a scope of its own (so
 * resources a handler opens close when it returns), with the Layer's context. A missing, unknown or
 * duplicated handler is a problem reported by `refuse`.
 */
export const groupLayer = <Class extends RequestClass, Route, Id, E>(options: {
  readonly tag: Context.Tag<Id, ReadonlyArray<Route>>
  readonly classes: ReadonlyArray<Class>
  readonly handlers: object
  readonly route: (request: Class, handle: Handle) => Route
  readonly refuse: (problems: ReadonlyArray<string>) => E
}): Layer.Layer<Id, E, any> => {
  const { classes, handlers, refuse, route, tag } = options
  return Layer.scoped(
    tag,
    Effect.gen(function* () {
      const tags = classes.map((c) => c._tag)
      const given = Object.keys(handlers)
      const byTag = handlers as Record<string, (r: Schema.TaggedRequest.All) => Effect.Effect<unknown, unknown, any>>
      const problems = [
        ...tags.filter((t) => typeof byTag[t] !== "function").map((t) => `no handler for ${t}`),
        ...given.filter((t) => !tags.includes(t)).map((t) => `a handler for ${t}, which is not in the group`),
        ...tags.filter((t, i) => tags.indexOf(t) !== i).map((t) => `${t} twice in the group`)
      ]
      if (problems.length > 0) return yield* Effect.fail(refuse(problems))
      const context = yield* Effect.context<any>()
      return classes.map((request) =>
        route(request, (r) => Effect.provide(Effect.scoped(byTag[request._tag]!(r)), context))
      )
    })
  )
}

/** Why a request was refused at the boundary, before any handler ran. */
export interface Refusal {
  readonly reason: "Invalid" | "TooLarge"
  readonly detail: string
}

/**
 * The request as its Schema sees it, and its encoded form: re-encoded and decoded, excess properties
 * refused, size bounded (its JSON, in bytes).
 */
export const validate = (
  schema: RequestClass,
  request: unknown,
  maxBytes: number
): Either.Either<{ readonly request: Schema.TaggedRequest.All; readonly encoded: unknown }, Refusal> => {
  const refuse = (reason: Refusal["reason"], detail: string) => Either.left({ reason, detail })
  const encoded = Schema.encodeUnknownEither(schema, { onExcessProperty: "error" })(request)
  if (Either.isLeft(encoded)) return refuse("Invalid", describeParseError(encoded.left))
  const json = Either.try(() => JSON.stringify(encoded.right))
  if (Either.isLeft(json)) return refuse("Invalid", "its encoded form is not JSON")
  const bytes = Json.byteLength(json.right)
  if (bytes > maxBytes) return refuse("TooLarge", `${bytes} bytes encoded, the limit is ${maxBytes}`)
  const decoded = Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })(encoded.right)
  if (Either.isLeft(decoded)) return refuse("Invalid", describeParseError(decoded.left))
  return Either.right({ request: decoded.right as Schema.TaggedRequest.All, encoded: encoded.right })
}

/**
 * Effect's formatter renders the offending value by recursion: a value nested deeply enough (a hostile
 * body 100,000 arrays deep) overflows the stack, which would turn bad input into a defect. Such a value
 * gets a description without it.
 */
export const describeParseError = (error: ParseResult.ParseError): string =>
  Either.getOrElse(
    Either.try(() => ParseResult.TreeFormatter.formatErrorSync(error)),
    () => "it does not match its Schema (a value nested too deeply to show)"
  )

/** The tag of something passed as a request, for errors and routing (it may be hostile input). */
export const requestTagOf = (request: unknown): string => {
  const tag = typeof request === "object" && request !== null ? (request as { _tag?: unknown })._tag : undefined
  return typeof tag === "string" ? tag : "(untagged)"
}

/** An error's `_tag`, if it has one, as `{ errorTag }`. */
export const errorTagOf = (error: unknown): { readonly errorTag?: string } =>
  typeof error === "object" && error !== null && typeof (error as { _tag?: unknown })._tag === "string"
    ? { errorTag: (error as { _tag: string })._tag }
    : {}

/** An error for a message: `Tag: message`, or its string. */
export const describeError = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? `${(error as { _tag?: string })._tag ?? "Error"}: ${error.message}`
    : String(error)
