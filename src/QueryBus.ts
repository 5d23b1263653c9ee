/**
 * The query bus: typed queries answered from read models, routed to their handlers like commands.
 *
 * Queries are `Schema.TaggedRequest` classes (payload, success and failure as Schemas), registered by
 * {@link group} with `group.toLayer(handlers)`; {@link layer} builds the bus. `ask` is typed end to end, in
 * process and across processes (`nats/NatsQueryTransport`, `http/QueryApi`: the same validation, the same
 * errors). **Read-your-writes**: a query asked with a {@link ReadAfter} (what a command wrote) is answered
 * once the projections have handled that write, or fails with a typed `ProjectionBehind`.
 * Queries are reads: they write nothing, so a transient failure is simply retried. The bus has no
 * middleware chain (authorization, timeouts): wrap `ask` where needed.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Aggregate from "./Aggregate.js"
import type * as CheckpointStore from "./CheckpointStore.js"
import * as Event from "./Event.js"
import type * as EventStore from "./EventStore.js"
import * as Requests from "./internal/requests.js"
import { saysTransient } from "./internal/transient.js"
import * as Projection from "./Projection.js"

// ---------------------------------------------------------------------------------------------------
// queries
// ---------------------------------------------------------------------------------------------------

/** A query: an instance of a `Schema.TaggedRequest` class. */
export type Query = Schema.TaggedRequest.All

/** What a query succeeds with. */
export type Success<Q> = Schema.WithResult.Success<Q>

/** The query's own failures (an account not found...). */
export type Failure<Q> = Schema.WithResult.Failure<Q>

/** A query class (a `Schema.TaggedRequest`): a Schema of queries, with its success and failure Schemas. */
export interface QueryClass extends Schema.Schema.AnyNoContext {
  readonly _tag: string
  readonly success: Schema.Schema.Any
  readonly failure: Schema.Schema.All
}

// ---------------------------------------------------------------------------------------------------
// read-your-writes
// ---------------------------------------------------------------------------------------------------

/**
 * What a query must reflect: a write (the stream, its version after the write, and the positions of the
 * events written, as a command's `Aggregate.HandleResult` has them), optionally the projections to wait
 * for (by name; default every projection the bus knows that reads the write) and how long to wait
 * (capped by the bus's `readAfterTimeout`). Its encoded form is JSON (positions as strings): it crosses
 * NATS in the request and HTTP as the `read-after` header (see `http/QueryApi`).
 */
export const ReadAfter = Schema.Struct({
  streamId: Schema.String,
  version: Schema.Int.pipe(Schema.nonNegative()),
  positions: Schema.optional(Schema.Array(Schema.BigInt).pipe(Schema.maxItems(1000))),
  projections: Schema.optional(Schema.Array(Schema.String)),
  timeoutMillis: Schema.optional(Schema.Int.pipe(Schema.positive()))
})
export type ReadAfter = typeof ReadAfter.Type

/** A {@link ReadAfter} of what a command wrote (its `Aggregate.HandleResult`, or an append's result). */
export const readAfter = (
  written: Pick<Aggregate.HandleResult<unknown>, "streamId" | "version"> & {
    readonly positions?: ReadonlyArray<bigint>
  },
  options: { readonly projections?: ReadonlyArray<string>; readonly timeout?: Duration.DurationInput } = {}
): ReadAfter => ({
  streamId: written.streamId,
  version: written.version,
  ...(written.positions === undefined ? {} : { positions: written.positions }),
  ...(options.projections === undefined ? {} : { projections: options.projections }),
  ...(options.timeout === undefined
    ? {}
    : { timeoutMillis: Math.max(1, Math.ceil(Duration.toMillis(Duration.decode(options.timeout)))) })
})

/** Options of `ask`. */
export interface AskOptions {
  /** Answer only once the projections have handled this write (see {@link ReadAfter}). */
  readonly readAfter?: ReadAfter
}

// ---------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------

/** The query was refused before reaching its handler (or its `readAfter` was): nothing ran. */
export class QueryValidationError extends Schema.TaggedError<QueryValidationError>()("QueryValidationError", {
  queryTag: Schema.String,
  reason: Schema.Literal("InvalidQuery", "TooLarge", "UnknownQuery", "InvalidReadAfter"),
  detail: Schema.String
}) {
  override get message() {
    return `Query ${this.queryTag} refused (${this.reason}): ${this.detail}`
  }
}

/** A failure worth retrying (a store unavailable, the serving instance overloaded) outlasted the retries. */
export class QueryUnavailable extends Schema.TaggedError<QueryUnavailable>()("QueryUnavailable", {
  queryTag: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `Query ${this.queryTag} could not be answered now: ${this.detail}`
  }
}

/** The handler failed with an error the query does not declare, and retrying would not help. */
export class QueryFailed extends Schema.TaggedError<QueryFailed>()("QueryFailed", {
  queryTag: Schema.String,
  /** The `_tag` of the handler's error, if it has one. */
  errorTag: Schema.optional(Schema.String),
  detail: Schema.String
}) {
  override get message() {
    return `Query ${this.queryTag} failed: ${this.detail}`
  }
}

/** A remote bus did not answer in time (see `NatsQueryTransport`). */
export class QueryTimeout extends Schema.TaggedError<QueryTimeout>()("QueryTimeout", {
  queryTag: Schema.String,
  timeoutMillis: Schema.Number
}) {
  override get message() {
    return `Query ${this.queryTag} timed out after ${this.timeoutMillis} ms`
  }
}

/** A remote bus could not be reached or answered nonsense (see `NatsQueryTransport`). */
export class QueryTransportError extends Schema.TaggedError<QueryTransportError>()("QueryTransportError", {
  queryTag: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `Query ${this.queryTag} could not be delivered: ${this.detail}`
  }
}

/** Every error the bus itself may fail a query with (beside the query's own failures). */
export const QueryBusError = Schema.Union(
  QueryValidationError,
  QueryUnavailable,
  QueryFailed,
  QueryTimeout,
  QueryTransportError,
  Projection.ProjectionBehind
)
export type QueryBusError = typeof QueryBusError.Type

/** The bus is wired wrong: a query with two handlers, a group with a missing handler... */
export class QueryBusConfigError extends Schema.TaggedError<QueryBusConfigError>()("QueryBusConfigError", {
  problems: Schema.Array(Schema.String)
}) {
  override get message() {
    return `Invalid query bus: ${this.problems.join("; ")}`
  }
}

// ---------------------------------------------------------------------------------------------------
// groups and handlers
// ---------------------------------------------------------------------------------------------------

/** The handler of one query: typed by the query's success; fails with anything. */
export type Handler<Q extends Query, R> = (query: Q) => Effect.Effect<Success<Q>, unknown, R>

/** One handler per query of the union `Q`, by tag. */
export type Handlers<Q extends Query, R> = {
  readonly [Tag in Q["_tag"]]: Handler<Extract<Q, { readonly _tag: Tag }>, R>
}

/** A registered handler, with its requirements already provided. */
export interface Route {
  readonly query: QueryClass
  readonly handle: (query: Query) => Effect.Effect<unknown, unknown>
}

/** The service a group's `toLayer` provides: its routes. */
export interface GroupHandlers<Q extends Query> {
  readonly _query: (_: Q) => Q
}

/** A set of queries whose handlers are registered together (those of one read model, say). */
export interface Group<Q extends Query> {
  readonly queries: ReadonlyArray<QueryClass>
  readonly tag: Context.Tag<GroupHandlers<Q>, ReadonlyArray<Route>>
  /** The group's handlers as a Layer; a missing or unknown handler fails the Layer. */
  readonly toLayer: <R>(
    handlers: Handlers<Q, R>
  ) => Layer.Layer<GroupHandlers<Q>, QueryBusConfigError, Exclude<R, Scope.Scope>>
}

/**
 * Groups queries (Schema.TaggedRequest classes) to register their handlers in one call.
 *
 * **Gotchas**: a group's handlers are one service, keyed by its queries' tags: two `toLayer`s of the same
 * group provide the same service, and the last one wins.
 */
export const group = <const Classes extends ReadonlyArray<QueryClass>>(
  ...queries: Classes
): Group<Schema.Schema.Type<Classes[number]>> => {
  type Q = Schema.Schema.Type<Classes[number]>
  const tag = Context.GenericTag<GroupHandlers<Q>, ReadonlyArray<Route>>(
    `effect-eventsourcing/QueryBus/Group/${queries
      .map((q) => q._tag)
      .sort()
      .join(",")}`
  )
  return {
    queries,
    tag,
    toLayer: (handlers) =>
      Requests.groupLayer({
        tag,
        classes: queries,
        handlers,
        route: (query, handle): Route => ({ query, handle }),
        refuse: (problems) => new QueryBusConfigError({ problems })
      }) as never
  }
}

// ---------------------------------------------------------------------------------------------------
// the bus
// ---------------------------------------------------------------------------------------------------

/** The query bus service. */
export class QueryBus extends Context.Tag("effect-eventsourcing/QueryBus")<
  QueryBus,
  {
    /** Validates the query, waits for its `readAfter` if any, and returns the handler's answer. */
    readonly ask: <Q extends Query>(
      query: Q,
      options?: AskOptions
    ) => Effect.Effect<Success<Q>, Failure<Q> | QueryBusError>
    /** The queries this bus answers (for transports). */
    readonly queries: ReadonlyArray<QueryClass>
  }
>() {}

/** Asks the {@link QueryBus} in context. */
export const ask = <Q extends Query>(
  query: Q,
  options?: AskOptions
): Effect.Effect<Success<Q>, Failure<Q> | QueryBusError, QueryBus> =>
  Effect.flatMap(QueryBus, (bus) => bus.ask(query, options))

/** Options of {@link layer}. */
export interface Options<Groups extends ReadonlyArray<Group<any>>> {
  readonly groups: Groups
  /** The projections a `readAfter` may wait for (by name); without them, a `readAfter` waits for none. */
  readonly projections?: ReadonlyArray<Projection.Projection<any, any, any>>
  /** The longest (and default) wait of a `readAfter`; default 5 seconds. */
  readonly readAfterTimeout?: Duration.DurationInput
  /** Retries of transient failures; default 3, exponential from 50 ms, jittered. */
  readonly retry?: Schedule.Schedule<unknown, unknown>
  /** Which failures are transient (retried); default: those that say so (`transient: true`). */
  readonly isTransient?: (error: unknown) => boolean
  /** Largest encoded query (JSON), in bytes; default 64 KiB. */
  readonly maxQueryBytes?: number
}

/** What a list of groups requires: each one's handlers. */
export type HandlersOf<G> = G extends Group<infer Q> ? GroupHandlers<Q> : never

/** Largest encoded query by default: 64 KiB. */
export const defaultMaxQueryBytes = 64 * 1024

const defaultRetry = Schedule.exponential("50 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(3)))

/**
 * Builds the bus from its groups' handlers, refusing duplicate and missing handlers when the Layer is built.
 *
 * Guarantees:
 * - **Validation at the boundary**: a query is re-encoded and decoded by its Schema (excess properties
 *   refused, size bounded) before anything runs; bad input fails with {@link QueryValidationError}.
 * - **Read-your-writes**: with `readAfter`, the handler runs once each projection named (default: each
 *   of `projections` reading the written events) has committed a checkpoint past the write
 *   (`Projection.waitFor`, across processes); after the timeout the query fails with `ProjectionBehind`.
 *   A name the bus does not know is a {@link QueryValidationError} (`InvalidReadAfter`).
 * - **Failures**: the query's own failures are returned as they are; a transient one (see `isTransient`)
 *   is retried, then reported as {@link QueryUnavailable}; any other as {@link QueryFailed}.
 *
 * **Gotchas**: the read models answer as of when the handler reads them: without `readAfter`, a query
 * right after a command may not show it yet (projections are eventually consistent). `readAfter` waits
 * only for the projections, not for other writes: the answer may show later ones too. It needs the
 * event store and checkpoint store the projections run on (it reads their checkpoints).
 */
export const layer = <const Groups extends ReadonlyArray<Group<any>>>(
  options: Options<Groups>
): Layer.Layer<
  QueryBus,
  QueryBusConfigError,
  HandlersOf<Groups[number]> | EventStore.EventStore | CheckpointStore.CheckpointStore
> =>
  Layer.effect(
    QueryBus,
    Effect.gen(function* () {
      const routes = new Map<string, Route>()
      const problems: Array<string> = []
      for (const g of options.groups) {
        for (const route of yield* g.tag) {
          if (routes.has(route.query._tag)) problems.push(`${route.query._tag} is answered twice`)
          routes.set(route.query._tag, route)
        }
      }
      const projections = new Map((options.projections ?? []).map((p) => [p.name, p]))
      if (projections.size !== (options.projections ?? []).length) problems.push("two projections of the same name")
      if (problems.length > 0) return yield* new QueryBusConfigError({ problems })
      const stores = yield* Effect.context<EventStore.EventStore | CheckpointStore.CheckpointStore>()
      const maxWait = Duration.toMillis(Duration.decode(options.readAfterTimeout ?? "5 seconds"))
      const maxBytes = options.maxQueryBytes ?? defaultMaxQueryBytes
      const transient = options.isTransient ?? saysTransient
      const retry = options.retry ?? defaultRetry

      const waitFor = (tag: string, after: ReadAfter) =>
        Effect.gen(function* () {
          const refuse = (detail: string) =>
            new QueryValidationError({ queryTag: tag, reason: "InvalidReadAfter", detail })
          const unknown = (after.projections ?? []).filter((name) => !projections.has(name))
          if (unknown.length > 0) return yield* refuse(`unknown projection(s): ${unknown.join(", ")}`)
          yield* Effect.mapError(Event.streamId(after.streamId), (error) => refuse(error.message))
          const waited =
            after.projections === undefined
              ? [...projections.values()]
              : after.projections.map((name) => projections.get(name)!)
          yield* Projection.waitFor(
            waited,
            {
              streamId: after.streamId,
              version: after.version,
              ...(after.positions === undefined ? {} : { positions: after.positions })
            },
            { timeout: Math.min(maxWait, after.timeoutMillis ?? maxWait) }
          ).pipe(
            Effect.catchTags({
              InvalidStreamId: (error) => Effect.fail(refuse(error.message)),
              EventStoreError: (error) => Effect.fail(new QueryUnavailable({ queryTag: tag, detail: error.message })),
              CheckpointStoreError: (error) =>
                Effect.fail(new QueryUnavailable({ queryTag: tag, detail: error.message }))
            }),
            Effect.provide(stores)
          )
        })

      const ask = <Q extends Query>(query: Q, askOptions?: AskOptions) =>
        Effect.gen(function* () {
          const tag = Requests.requestTagOf(query)
          const route = routes.get(tag)
          if (route === undefined) {
            return yield* new QueryValidationError({
              queryTag: tag,
              reason: "UnknownQuery",
              detail: "no handler is registered for this query"
            })
          }
          const valid = yield* validateQuery(route.query, query, maxBytes)
          if (askOptions?.readAfter !== undefined) yield* waitFor(tag, askOptions.readAfter)
          const isOwn = Schema.is(route.query.failure as Schema.Schema.Any)
          return yield* route.handle(valid.query).pipe(
            Effect.retry({ schedule: retry, while: (error) => !isOwn(error) && transient(error) }),
            Effect.catchIf(
              (error) => !isOwn(error),
              (error) =>
                Effect.fail(
                  transient(error)
                    ? new QueryUnavailable({ queryTag: tag, detail: Requests.describeError(error) })
                    : new QueryFailed({
                        queryTag: tag,
                        detail: Requests.describeError(error),
                        ...Requests.errorTagOf(error)
                      })
                )
            )
          )
        }).pipe(
          Effect.withSpan("QueryBus.ask", {
            attributes: { "query.tag": Requests.requestTagOf(query) },
            captureStackTrace: false
          })
        ) as Effect.Effect<Success<Q>, Failure<Q> | QueryBusError>

      return QueryBus.of({ ask, queries: [...routes.values()].map((r) => r.query) })
    })
  ) as never

/**
 * The query as its Schema sees it, and its encoded form: re-encoded and decoded, excess properties
 * refused, size bounded. For transports: the bus runs it on every `ask`.
 */
export const validateQuery = (
  schema: QueryClass,
  query: unknown,
  maxBytes: number
): Effect.Effect<{ readonly query: Query; readonly encoded: unknown }, QueryValidationError> =>
  Either.match(Requests.validate(schema, query, maxBytes), {
    onLeft: ({ detail, reason }) =>
      Effect.fail(
        new QueryValidationError({
          queryTag: schema._tag,
          reason: reason === "Invalid" ? "InvalidQuery" : reason,
          detail
        })
      ),
    onRight: ({ encoded, request }) => Effect.succeed({ query: request, encoded })
  })
