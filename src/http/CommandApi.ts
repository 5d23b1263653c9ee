/**
 * Commands over HTTP, derived: {@link group} turns a command bus group (`CommandBus.group` of
 * `Schema.TaggedRequest` classes) into an `HttpApiGroup` with one `POST` endpoint per command, the
 * aggregate id in the path and the command's other fields as the body; {@link layer} serves it by
 * dispatching on the `CommandBus` in context. The endpoint types are the commands' own, so
 * `HttpApiClient.make` of an API holding the group is a typed client, and `OpenApi.fromApi` describes
 * every command for clients in other languages.
 *
 * It adds no validation of its own: the body is decoded by the command's field Schemas (unknown fields
 * refused), then the bus validates the command as on any dispatch. Statuses: {@link group}.
 */
import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as CommandBus from "../CommandBus.js"
import * as Event from "../Event.js"
import * as Derive from "./internal/derive.js"

// ---------------------------------------------------------------------------------------------------
// types
// ---------------------------------------------------------------------------------------------------

/** The name of a command's endpoint (and of its client method): its tag, uncapitalized (`Deposit`: `deposit`). */
export type EndpointName<Tag extends string> = Uncapitalize<Tag>

/** The path parameters of a command's endpoint: its aggregate id field. */
export type PathOf<C extends CommandBus.Command, IdField extends string> = {
  readonly [K in keyof C as K extends IdField ? K : never]: C[K]
}

/** The fields of a command its body carries: all but `_tag` and the id field (optional ones stay optional). */
export type PayloadFields<C extends CommandBus.Command, IdField extends string> = {
  readonly [K in keyof C as K extends string ? (K extends "_tag" | IdField ? never : K) : never]: C[K]
}

/** The body of a command's endpoint: its {@link PayloadFields}, or none (`never`) when it has none. */
export type PayloadOf<C extends CommandBus.Command, IdField extends string> = keyof PayloadFields<
  C,
  IdField
> extends never
  ? never
  : PayloadFields<C, IdField>

/** A command's endpoint: `POST`, the id in the path, the other fields as the body, typed by the command. */
export type Endpoint<C extends CommandBus.Command, IdField extends string> = C extends CommandBus.Command
  ? HttpApiEndpoint.HttpApiEndpoint<
      EndpointName<C["_tag"]>,
      "POST",
      PathOf<C, IdField>,
      never,
      PayloadOf<C, IdField>,
      never,
      CommandBus.Success<C>,
      CommandBus.Failure<C>
    >
  : never

/** The group {@link group} derives: one {@link Endpoint} per command, the bus's errors shared by all. */
export type CommandGroup<
  Name extends string,
  C extends CommandBus.Command,
  IdField extends string
> = HttpApiGroup.HttpApiGroup<Name, Endpoint<C, IdField>, CommandBus.CommandBusError>

/** How one command's endpoint differs from the default. */
export interface EndpointOptions {
  /** After the id: `"/open"` for `POST /accounts/:accountId/open`; default the tag in kebab case. */
  readonly path?: HttpApiEndpoint.PathSegment | ""
  /** The success status; default 200 (204 for a `Schema.Void` success). */
  readonly status?: number
}

/** Options of {@link group}. */
export interface Options<C extends CommandBus.Command, IdField extends string> {
  /** The field of every command naming its aggregate: a path parameter, so its Schema must decode a string. */
  readonly idField: IdField
  /** Before the id: `"/accounts"` gives `/accounts/:accountId/...`. */
  readonly path: HttpApiEndpoint.PathSegment
  /** Per command tag, how its endpoint differs from the default. */
  readonly endpoints?: { readonly [Tag in C["_tag"]]?: EndpointOptions }
}

// ---------------------------------------------------------------------------------------------------
// statuses
// ---------------------------------------------------------------------------------------------------

/** A domain error's status when its Schema has no `HttpApiSchema.annotations({ status })`. */
export const defaultDomainErrorStatus = 409

/**
 * The status of each error of the bus: bad input 400, a missing role 403, a failure worth retrying
 * (later, or elsewhere) 503, a failure retrying cannot fix 500.
 */
export const busErrorStatus = {
  CommandValidationError: 400,
  Unauthorized: 403,
  CommandTimeout: 503,
  CommandUnavailable: 503,
  BusOverloaded: 503,
  CommandCancelled: 503,
  CommandTransportError: 503,
  CommandDefect: 500,
  CommandFailed: 500
} as const satisfies Record<CommandBus.CommandBusError["_tag"], number>

/** The bus's error Schemas, each with its status. */
const busErrors: ReadonlyArray<readonly [Schema.Schema.Any, number]> = [
  [CommandBus.CommandValidationError, busErrorStatus.CommandValidationError],
  // "Unauthorized" alone names another schema in an API that also holds the event browser (in one call:
  // annotating a class's Schema twice keeps the last annotations only)
  [
    CommandBus.Unauthorized.annotations({
      identifier: "CommandUnauthorized",
      ...HttpApiSchema.annotations({ status: busErrorStatus.Unauthorized })
    }),
    busErrorStatus.Unauthorized
  ],
  [CommandBus.CommandTimeout, busErrorStatus.CommandTimeout],
  [CommandBus.CommandUnavailable, busErrorStatus.CommandUnavailable],
  [CommandBus.BusOverloaded, busErrorStatus.BusOverloaded],
  [CommandBus.CommandCancelled, busErrorStatus.CommandCancelled],
  [CommandBus.CommandTransportError, busErrorStatus.CommandTransportError],
  [CommandBus.CommandDefect, busErrorStatus.CommandDefect],
  [CommandBus.CommandFailed, busErrorStatus.CommandFailed]
]

/**
 * Failures of handling that refuse what the request carried: its data or its id (the store's
 * `InvalidAppend`, `InvalidStreamId`), or its `Idempotency-Key` already used for another aggregate
 * (`CommandIdReused`). The client's fault.
 */
const refusedInput: ReadonlySet<string> = new Set(["InvalidAppend", "InvalidStreamId", "CommandIdReused"])

/**
 * A dispatch's failure as the endpoint answers it: the store refusing the command's data (`InvalidAppend`,
 * `InvalidStreamId`) or a command id reused for another aggregate (`CommandIdReused`), reported by the bus
 * as `CommandFailed`, is bad input, a `CommandValidationError` (400); any other failure is returned as it is.
 */
export const httpFailure = <E>(error: E): E | CommandBus.CommandValidationError => {
  if (error instanceof CommandBus.CommandFailed && error.errorTag !== undefined && refusedInput.has(error.errorTag)) {
    return new CommandBus.CommandValidationError({
      commandTag: error.commandTag,
      reason: "InvalidCommand",
      detail: error.detail
    })
  }
  return error
}

// ---------------------------------------------------------------------------------------------------
// the group
// ---------------------------------------------------------------------------------------------------

/** What {@link layer} needs to serve a derived group: its commands and the id field (a group annotation). */
class Commands extends Context.Tag("effect-eventsourcing/http/CommandApi/Commands")<Commands, Derive.Derived>() {}

/**
 * Derives an `HttpApiGroup` named `name` from a command bus group: for each command, the endpoint
 * `POST {path}/:{idField}{endpoint path}` (by default the tag in kebab case: `Deposit` is
 * `POST /accounts/:accountId/deposit`), named after the tag uncapitalized (`client.accounts.deposit`).
 *
 * - **Input**: the path parameter is decoded by the id field's Schema, the JSON body by the other fields'
 *   Schemas, **unknown fields refused** (as the bus refuses them: a misspelt field is an error, never
 *   dropped); a command without other fields takes no body (or `{}`). Failing input is the API's
 *   `HttpApiDecodeError` (400); the bus's own validation (refinements again, the size limit) is a
 *   `CommandValidationError` (400).
 * - **Success**: the command's success Schema, 200 (or the endpoint's `status`).
 * - **Domain errors**: each member of the command's failure Schema, with the status of its
 *   `HttpApiSchema.annotations({ status })`, or {@link defaultDomainErrorStatus} (409).
 * - **The bus's errors**: {@link busErrorStatus}: 400 and 403 for the client's faults, 503 when worth
 *   retrying, 500 otherwise; a store refusing the command's data is a 400 (see {@link httpFailure}).
 * - **Retries**: a request's `Idempotency-Key` header ({@link idempotencyKeyHeader}), when present, is the
 *   command's id: a client retrying after a 503 or a lost connection with the same key gets the first
 *   result, and the command is applied once (the aggregate's command dedup, within its TTL). A key the
 *   store does not take (not a short printable string) or already used for another aggregate is a 400.
 *
 * **Gotchas**: the id field must be a string on the wire (`Schema.String`, a pattern, a UUID,
 * `NumberFromString`...). Without an `Idempotency-Key`, every request is a new command with a new id: a
 * retried deposit may be applied twice. The header is not part of the endpoints' Schemas (so the typed
 * client does not ask for it): set it with the `transformClient` option of `HttpApiClient.make`. Dedup is
 * the aggregate's (`Aggregate.handler`, so `CommandBus.deciderLayer`): a handler of your own finds the key
 * as its command context's `commandId`. A unique value the command does not declare in its failure Schema
 * (`UniqueConstraintViolation`) is a `CommandFailed`, a 500: declare it to answer 409.
 */
export const group = <
  const Name extends string,
  C extends CommandBus.Command,
  const IdField extends Extract<keyof C, string>
>(
  name: Name,
  commands: CommandBus.Group<C>,
  options: Options<C, IdField>
): CommandGroup<Name, C, IdField> => {
  const endpoints = (options.endpoints ?? {}) as Record<string, EndpointOptions | undefined>
  // built from values known at run time only: typed loosely here, precisely by the result's type
  let derived: any = HttpApiGroup.make(name).annotate(Commands, {
    requests: commands.commands,
    idField: options.idField
  })
  for (const command of commands.commands) {
    const own = endpoints[command._tag] ?? {}
    const { [options.idField]: id, _tag: _, ...payload } = Derive.fieldsOf(command)
    const path = `${options.path}/:${options.idField}${own.path ?? `/${Derive.kebab(command._tag)}`}` as const
    let endpoint: any = HttpApiEndpoint.post(Derive.uncapitalize(command._tag), path)
      .setPath(Schema.Struct({ [options.idField]: id! }) as never)
      .addSuccess(command.success, own.status === undefined ? undefined : { status: own.status })
    if (Object.keys(payload).length > 0) {
      endpoint = endpoint.setPayload(
        Schema.Struct(payload).annotations({ parseOptions: { onExcessProperty: "error" } }) as never
      )
    }
    endpoint = Derive.addFailures(endpoint, command.failure, defaultDomainErrorStatus)
    derived = derived.add(endpoint)
  }
  derived = Derive.addGroupErrors(derived, busErrors)
  return derived as unknown as CommandGroup<Name, C, IdField>
}

/** The request header whose value, when present, is the command's id (lower case, as Node gives headers). */
export const idempotencyKeyHeader = "idempotency-key"

/** Runs a dispatch with `key` as its command id, when there is one. */
const withIdempotencyKey =
  (key: string | undefined) =>
  <A, E, R>(dispatch: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    key === undefined
      ? dispatch
      : Effect.flatMap(Event.CommandContext, (context) =>
          Event.withCommandContext({ ...context, commandId: key })(dispatch)
        )

// ---------------------------------------------------------------------------------------------------
// the handlers
// ---------------------------------------------------------------------------------------------------

/**
 * Serves the derived group `name` of `api` (made by {@link group}): each request becomes the command
 * (its path id and body), dispatched on the `CommandBus`; its answer is the command's result, or its
 * failure as {@link group} describes.
 *
 * The Layer fails with `CommandBusConfigError` when the bus does not handle one of the group's commands,
 * so a wiring mistake is found at startup, not by the first client (which would get a 400 for it).
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
): Layer.Layer<HttpApiGroup.ApiGroup<ApiId, Name>, CommandBus.CommandBusConfigError, CommandBus.CommandBus> =>
  Derive.serveGroup(api, name, {
    annotation: Commands,
    madeBy: "CommandApi.group",
    configError: (problems) => new CommandBus.CommandBusConfigError({ problems }),
    bus: CommandBus.CommandBus,
    served: (bus) => bus.commands.map((c) => c._tag),
    verb: "handle",
    handler:
      (bus, build, hasFields, idField) =>
      (request: {
        readonly path: Record<string, unknown>
        readonly payload?: object
        readonly request: HttpServerRequest.HttpServerRequest
      }) =>
        Effect.zipRight(
          hasFields ? Effect.void : refuseFields(request.request),
          bus
            .dispatch(build({ ...request.payload, [idField!]: request.path[idField!] }) as CommandBus.Command)
            .pipe(withIdempotencyKey(request.request.headers[idempotencyKeyHeader]), Effect.mapError(httpFailure))
        )
  }) as never

/**
 * A command without other fields than its id has no body Schema, so the platform does not read one: a body
 * with fields is refused here (as unknown fields are), and an empty body or `{}` passes.
 */
const refuseFields = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<void, HttpApiDecodeError> =>
  Effect.flatMap(
    Effect.orElseFail(request.text, () => refusal("The body could not be read")),
    (text) => {
      if (text.trim() === "") return Effect.void
      const body = Either.try(() => JSON.parse(text) as unknown)
      const empty =
        Either.isRight(body) &&
        typeof body.right === "object" &&
        body.right !== null &&
        !Array.isArray(body.right) &&
        Object.keys(body.right).length === 0
      return empty ? Effect.void : Effect.fail(refusal("This command takes no body (or {})"))
    }
  )

const refusal = (message: string) => new HttpApiDecodeError({ issues: [], message })
