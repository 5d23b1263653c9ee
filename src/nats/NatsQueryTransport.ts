/**
 * The query bus across processes, over NATS request-reply: the same machinery as
 * `NatsCommandTransport` (one subject per query tag, `<prefix>.<Tag>`, in a queue group).
 *
 * - {@link serve}: serves a process's `QueryBus` (the one next to the read models).
 * - {@link layerClient}: a `QueryBus` whose `ask` sends the query, with its `readAfter`, to whichever
 *   instance serves it: the same typed signature as the local bus, read-your-writes included.
 *
 * The wire format and the Gotchas: {@link serve}.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Requests from "../internal/requests.js"
import {
  type AskOptions,
  defaultMaxQueryBytes,
  type Failure,
  type Group,
  type Query,
  QueryBus,
  QueryBusConfigError,
  QueryBusError,
  type QueryClass,
  QueryTimeout,
  QueryTransportError,
  QueryUnavailable,
  QueryValidationError,
  ReadAfter,
  type Success,
  validateQuery
} from "../QueryBus.js"
import * as RequestReply from "./internal/requestReply.js"
import { Nats } from "./Nats.js"

/** Options shared by both sides. */
export interface Options {
  /** Subject prefix; default `"queries"`. Queries travel on `<prefix>.<Tag>`. */
  readonly subjectPrefix?: string
}

/** Options of {@link serve}. */
export interface ServeOptions extends Options {
  /** Queue group shared by the instances; default `"query-bus"`. */
  readonly queue?: string
  /** Requests handled at once by this instance; default 256. */
  readonly concurrency?: number
  /** Largest request accepted, in bytes; default 64 KiB. */
  readonly maxQueryBytes?: number
}

/** Options of {@link layerClient}. */
export interface ClientOptions extends Options {
  /** The queries this client asks, by group. */
  readonly groups: ReadonlyArray<Group<any>>
  /** How long to wait for a reply; default 10 seconds (make it longer than the server's `readAfterTimeout`). */
  readonly timeout?: Duration.DurationInput
}

const Request = Schema.parseJson(Schema.Struct({ query: Schema.Unknown, readAfter: Schema.optional(ReadAfter) }))

/** The reply of one query: its Exit, with the query's and the bus's errors as failures. */
const replySchema = (query: QueryClass): Schema.Schema<Exit.Exit<unknown, unknown>, string> =>
  Schema.parseJson(
    Schema.Exit({
      success: query.success,
      failure: Schema.Union(query.failure as Schema.Schema.Any, QueryBusError),
      defect: Schema.Defect
    })
  ) as unknown as Schema.Schema<Exit.Exit<unknown, unknown>, string>

const checkSubjects = (prefix: string, tags: ReadonlyArray<string>) => {
  const problems = RequestReply.subjectProblems(prefix, tags, "query")
  return problems.length > 0 ? Effect.fail(new QueryBusConfigError({ problems })) : Effect.void
}

/**
 * Serves the `QueryBus` in context over NATS until the Layer is released (then requests in progress get up
 * to 10 seconds to finish their reply). Requests beyond `concurrency` running and as many waiting are
 * answered at once with `QueryUnavailable`.
 *
 * Wire format (JSON): the request is `{ query, readAfter? }` (the query encoded by its Schema, the
 * `QueryBus.ReadAfter` encoded); the reply is the encoded `Exit` of `ask`, whose failures are the query's
 * own or the bus's (`ProjectionBehind` included), so both come back typed.
 *
 * **Gotchas**: a `readAfter` holds a request (and a slot of `concurrency`) while it waits, up to the
 * serving bus's `readAfterTimeout`: keep the client's `timeout` longer, or the client gives up with
 * `QueryTimeout` while the server is still waiting. Queries carry no caller metadata (no principal):
 * secure the subjects with NATS permissions.
 */
export const serve = (options: ServeOptions = {}): Layer.Layer<never, QueryBusConfigError, QueryBus | Nats> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const bus = yield* QueryBus
      const nats = yield* Nats
      const prefix = options.subjectPrefix ?? "queries"
      const queue = options.queue ?? "query-bus"
      yield* checkSubjects(prefix, [...bus.queries.map((q) => q._tag), queue])
      yield* RequestReply.serve({
        nats,
        prefix,
        queue,
        concurrency: Math.max(1, options.concurrency ?? 256),
        maxBytes: options.maxQueryBytes ?? defaultMaxQueryBytes,
        span: "QueryBus.serve",
        attribute: "query.tag",
        refuse: (problems) => new QueryBusConfigError({ problems }),
        endpoints: bus.queries.map((query): RequestReply.Endpoint => {
          const invalid = (detail: string) =>
            new QueryValidationError({ queryTag: query._tag, reason: "InvalidQuery", detail })
          return {
            tag: query._tag,
            encode: Schema.encodeEither(replySchema(query)),
            tooLarge: (detail) => new QueryValidationError({ queryTag: query._tag, reason: "TooLarge", detail }),
            overloaded: new QueryUnavailable({ queryTag: query._tag, detail: "the serving instance is overloaded" }),
            undeliverable: (detail) => new QueryTransportError({ queryTag: query._tag, detail }),
            handle: (text) =>
              Effect.gen(function* () {
                const request = yield* Schema.decodeUnknown(Request)(text).pipe(
                  Effect.mapError((error) => invalid(error.message))
                )
                const decoded = yield* Schema.decodeUnknown(query, { onExcessProperty: "error" })(request.query).pipe(
                  Effect.mapError((error) => invalid(error.message))
                )
                return yield* bus.ask(
                  decoded as Query,
                  request.readAfter === undefined ? {} : { readAfter: request.readAfter }
                )
              })
          }
        })
      })
    })
  )

/** A `QueryBus` that sends its queries over NATS to the instances serving them. */
export const layerClient = (options: ClientOptions): Layer.Layer<QueryBus, QueryBusConfigError, Nats> =>
  Layer.effect(
    QueryBus,
    Effect.gen(function* () {
      const nats = yield* Nats
      const prefix = options.subjectPrefix ?? "queries"
      const queries = options.groups.flatMap((g) => g.queries)
      yield* checkSubjects(
        prefix,
        queries.map((q) => q._tag)
      )
      const routes = new Map(queries.map((q) => [q._tag, { query: q, reply: Schema.decodeEither(replySchema(q)) }]))
      const timeout = Duration.toMillis(Duration.decode(options.timeout ?? "10 seconds"))
      const encodeReadAfter = Schema.encodeSync(ReadAfter)

      const ask = <Q extends Query>(query: Q, askOptions?: AskOptions) =>
        Effect.gen(function* () {
          const tag = Requests.requestTagOf(query)
          const route = routes.get(tag)
          if (route === undefined) {
            return yield* new QueryValidationError({
              queryTag: tag,
              reason: "UnknownQuery",
              detail: "this client does not ask this query"
            })
          }
          const { encoded } = yield* validateQuery(route.query, query, defaultMaxQueryBytes)
          const transportError = (detail: string) => new QueryTransportError({ queryTag: tag, detail })
          const readAfter = askOptions?.readAfter
          const body = JSON.stringify({
            query: encoded,
            ...(readAfter === undefined ? {} : { readAfter: encodeReadAfter(readAfter) })
          })
          const reply = yield* RequestReply.request<QueryTimeout | QueryTransportError>(
            nats,
            RequestReply.subjectOf(prefix, tag),
            body,
            timeout,
            {
              timeout: (timeoutMillis) => new QueryTimeout({ queryTag: tag, timeoutMillis }),
              transport: transportError
            }
          )
          return yield* RequestReply.replied(route.reply(reply), transportError)
        }).pipe(
          Effect.withSpan("QueryBus.ask", {
            kind: "client",
            attributes: { "query.tag": Requests.requestTagOf(query) },
            captureStackTrace: false
          })
        ) as Effect.Effect<Success<Q>, Failure<Q> | QueryBusError>

      return QueryBus.of({ ask, queries })
    })
  )
