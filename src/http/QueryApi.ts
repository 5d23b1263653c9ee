/**
 * Queries over HTTP, derived: {@link group} turns a query bus group (`QueryBus.group` of
 * `Schema.TaggedRequest` classes) into an `HttpApiGroup` with one `GET` endpoint per query, its id field
 * (if it has one) in the path and its other fields as URL parameters; {@link layer} serves it by asking
 * the `QueryBus` in context. The endpoint types are the queries' own, so `HttpApiClient.make` of an API
 * holding the group is a typed client, and `OpenApi.fromApi` describes every query.
 *
 * Read-your-writes: the `read-after` header ({@link readAfterHeader}) carries a `QueryBus.ReadAfter`
 * (what a command wrote) as JSON; the answer then reflects that write, or is a 503 `ProjectionBehind`.
 * Statuses: {@link group}.
 */
import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Projection from "../Projection.js"
import * as QueryBus from "../QueryBus.js"
import * as Derive from "./internal/derive.js"

// ---------------------------------------------------------------------------------------------------
// types
// ---------------------------------------------------------------------------------------------------

/** A field of any of the queries `Q` (`keyof` of a union names only the fields all members share). */
export type FieldOf<Q> = Q extends unknown ? Extract<keyof Q, string> : never

/** The name of a query's endpoint (and of its client method): its tag, uncapitalized (`GetAccount`: `getAccount`). */
export type EndpointName<Tag extends string> = Uncapitalize<Tag>

/** The path parameters of a query's endpoint: its id field, if it has one (`never`: none). */
export type PathOf<Q extends QueryBus.Query, IdField extends string> = IdField extends keyof Q
  ? { readonly [K in keyof Q as K extends IdField ? K : never]: Q[K] }
  : never

/** The fields of a query its URL parameters carry: all but `_tag` and the id field. */
export type ParamFields<Q extends QueryBus.Query, IdField extends string> = {
  readonly [K in keyof Q as K extends string ? (K extends "_tag" | IdField ? never : K) : never]: Q[K]
}

/** The URL parameters of a query's endpoint: its {@link ParamFields}, or none (`never`). */
export type UrlParamsOf<Q extends QueryBus.Query, IdField extends string> = keyof ParamFields<Q, IdField> extends never
  ? never
  : ParamFields<Q, IdField>

/** The request header carrying a `QueryBus.ReadAfter` (its JSON): the answer reflects that write. */
export const readAfterHeader = "read-after"

/** The headers of every query endpoint: an optional {@link readAfterHeader}. */
export const Headers = Schema.Struct({ [readAfterHeader]: Schema.optional(Schema.parseJson(QueryBus.ReadAfter)) })
export type Headers = typeof Headers.Type

/** A query's endpoint: `GET`, the id in the path, the other fields as URL parameters, typed by the query. */
export type Endpoint<Q extends QueryBus.Query, IdField extends string> = Q extends QueryBus.Query
  ? HttpApiEndpoint.HttpApiEndpoint<
      EndpointName<Q["_tag"]>,
      "GET",
      PathOf<Q, IdField>,
      UrlParamsOf<Q, IdField>,
      never,
      Headers,
      QueryBus.Success<Q>,
      QueryBus.Failure<Q>
    >
  : never

/** The group {@link group} derives: one {@link Endpoint} per query, the bus's errors shared by all. */
export type QueryGroup<
  Name extends string,
  Q extends QueryBus.Query,
  IdField extends string
> = HttpApiGroup.HttpApiGroup<Name, Endpoint<Q, IdField>, QueryBus.QueryBusError>

/** How one query's endpoint differs from the default. */
export interface EndpointOptions {
  /** After the id (or the group's path): `""` for `GET /accounts/:accountId`; default the tag in kebab case. */
  readonly path?: HttpApiEndpoint.PathSegment | ""
}

/** Options of {@link group}. */
export interface Options<Q extends QueryBus.Query, IdField extends string> {
  /** The field naming what a query reads, when it has it: a path parameter (its Schema must decode a string). */
  readonly idField?: IdField
  /** Before the id: `"/accounts"` gives `/accounts/:accountId/...` (and `/accounts/...` without an id). */
  readonly path: HttpApiEndpoint.PathSegment
  /** Per query tag, how its endpoint differs from the default. */
  readonly endpoints?: { readonly [Tag in Q["_tag"]]?: EndpointOptions }
}

// ---------------------------------------------------------------------------------------------------
// statuses
// ---------------------------------------------------------------------------------------------------

/** A query's own failure's status when its Schema has no `HttpApiSchema.annotations({ status })`. */
export const defaultFailureStatus = 422

/**
 * The status of each error of the bus: bad input 400, a failure worth retrying (later) 503 (a projection
 * behind the `read-after` write included), a failure retrying cannot fix 500.
 */
export const busErrorStatus = {
  QueryValidationError: 400,
  QueryUnavailable: 503,
  QueryTimeout: 503,
  QueryTransportError: 503,
  ProjectionBehind: 503,
  QueryFailed: 500
} as const satisfies Record<QueryBus.QueryBusError["_tag"], number>

const busErrors: ReadonlyArray<readonly [Schema.Schema.Any, number]> = [
  [QueryBus.QueryValidationError, busErrorStatus.QueryValidationError],
  [QueryBus.QueryUnavailable, busErrorStatus.QueryUnavailable],
  [QueryBus.QueryTimeout, busErrorStatus.QueryTimeout],
  [QueryBus.QueryTransportError, busErrorStatus.QueryTransportError],
  [Projection.ProjectionBehind, busErrorStatus.ProjectionBehind],
  [QueryBus.QueryFailed, busErrorStatus.QueryFailed]
]

// ---------------------------------------------------------------------------------------------------
// the group
// ---------------------------------------------------------------------------------------------------

/** What {@link layer} needs to serve a derived group: its queries and the id field (a group annotation). */
class Queries extends Context.Tag("effect-eventsourcing/http/QueryApi/Queries")<Queries, Derive.Derived>() {}

/**
 * Derives an `HttpApiGroup` named `name` from a query bus group: for each query, the endpoint
 * `GET {path}/:{idField}{endpoint path}` when the query has the id field, `GET {path}{endpoint path}`
 * otherwise (by default the tag in kebab case), named after the tag uncapitalized (`client.accounts.getAccount`).
 *
 * - **Why GET**: a query changes nothing, so it is safe to retry, cache and link to; its input is small
 *   and flat (ids, filters, a page), which fits a path and URL parameters.
 * - **Input**: the path parameter is decoded by the id field's Schema, the URL parameters by the other
 *   fields' Schemas, **unknown parameters refused** (a misspelt filter is an error, never ignored); so
 *   every field must decode from a string (`Schema.NumberFromString`...). Failing input is the API's
 *   `HttpApiDecodeError` (400); the bus's own validation a `QueryValidationError` (400).
 * - **Read-your-writes**: the `read-after` header (see {@link readAfterHeader}), typed in the client as
 *   `headers: { "read-after": readAfter }` (pass `headers: {}` without it).
 * - **Success**: the query's success Schema, 200.
 * - **The query's failures**: each member of its failure Schema, with the status of its
 *   `HttpApiSchema.annotations({ status })` (404 for a "not found"), or {@link defaultFailureStatus} (422).
 * - **The bus's errors**: {@link busErrorStatus}.
 *
 * **Gotchas**: answers are not cached by the library (no `Cache-Control`, no `ETag`). A `read-after`
 * holds the request while the projections catch up, up to the bus's `readAfterTimeout`.
 */
export const group = <const Name extends string, Q extends QueryBus.Query, const IdField extends FieldOf<Q> = never>(
  name: Name,
  queries: QueryBus.Group<Q>,
  options: Options<Q, IdField>
): QueryGroup<Name, Q, IdField> => {
  const endpoints = (options.endpoints ?? {}) as Record<string, EndpointOptions | undefined>
  const idField = options.idField as string | undefined
  // built from values known at run time only: typed loosely here, precisely by the result's type
  let derived: any = HttpApiGroup.make(name).annotate(Queries, { requests: queries.queries, idField })
  for (const query of queries.queries) {
    const own = endpoints[query._tag] ?? {}
    const { _tag: _, ...fields } = Derive.fieldsOf(query)
    const id = idField === undefined ? undefined : fields[idField]
    const params = Object.fromEntries(Object.entries(fields).filter(([field]) => field !== idField))
    const rest = own.path ?? `/${Derive.kebab(query._tag)}`
    const path = id === undefined ? `${options.path}${rest}` : `${options.path}/:${idField}${rest}`
    let endpoint: any = HttpApiEndpoint.get(Derive.uncapitalize(query._tag), path as HttpApiEndpoint.PathSegment)
      .setHeaders(Headers)
      .addSuccess(query.success)
    if (id !== undefined) endpoint = endpoint.setPath(Schema.Struct({ [idField!]: id }) as never)
    if (Object.keys(params).length > 0) {
      endpoint = endpoint.setUrlParams(
        Schema.Struct(params).annotations({ parseOptions: { onExcessProperty: "error" } }) as never
      )
    }
    derived = derived.add(Derive.addFailures(endpoint, query.failure, defaultFailureStatus))
  }
  return Derive.addGroupErrors(derived, busErrors) as unknown as QueryGroup<Name, Q, IdField>
}

// ---------------------------------------------------------------------------------------------------
// the handlers
// ---------------------------------------------------------------------------------------------------

/**
 * Serves the derived group `name` of `api` (made by {@link group}): each request becomes the query (its
 * path id and URL parameters), asked of the `QueryBus` with the request's `read-after`, if any.
 *
 * The Layer fails with `QueryBusConfigError` when the bus does not answer one of the group's queries.
 */
export const layer = <
  ApiId extends string,
  Groups extends HttpApiGroup.HttpApiGroup.Any,
  ApiError,
  ApiR,
  const Name extends HttpApiGroup.HttpApiGroup.Name<Groups>
>(
  api: HttpApi.HttpApi<ApiId, Groups, ApiError, ApiR>,
  name: Name
): Layer.Layer<HttpApiGroup.ApiGroup<ApiId, Name>, QueryBus.QueryBusConfigError, QueryBus.QueryBus> =>
  Derive.serveGroup(api, name, {
    annotation: Queries,
    madeBy: "QueryApi.group",
    configError: (problems) => new QueryBus.QueryBusConfigError({ problems }),
    bus: QueryBus.QueryBus,
    served: (bus) => bus.queries.map((q) => q._tag),
    verb: "answer",
    handler:
      (bus, build, hasFields, idField) =>
      (request: {
        readonly path?: Record<string, unknown>
        readonly urlParams?: object
        readonly headers: Headers
        readonly request: HttpServerRequest.HttpServerRequest
      }) => {
        const readAfter = request.headers[readAfterHeader]
        const id = idField !== undefined && request.path !== undefined ? { [idField]: request.path[idField] } : {}
        return Effect.zipRight(
          hasFields ? Effect.void : refuseParams(request.request),
          bus.ask(
            build({ ...request.urlParams, ...id }) as QueryBus.Query,
            readAfter === undefined ? {} : { readAfter }
          )
        )
      }
  }) as never

/** A query without URL parameters has no Schema for them, so the platform ignores them: refused here. */
const refuseParams = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<void, HttpApiDecodeError> => {
  const at = request.url.indexOf("?")
  return at < 0 || at === request.url.length - 1
    ? Effect.void
    : Effect.fail(new HttpApiDecodeError({ issues: [], message: "This query takes no URL parameters" }))
}
