/**
 * What `CommandApi` and `QueryApi` share to derive HTTP endpoints from `Schema.TaggedRequest` classes:
 * names, fields, errors with their statuses, and serving a derived group on its bus.
 */
import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"

/** `OpenAccount`: `open-account`. */
export const kebab = (tag: string) => tag.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase()

/** `GetAccount`: `getAccount`, the endpoint's (and client method's) name. */
export const uncapitalize = (tag: string) => tag.charAt(0).toLowerCase() + tag.slice(1)

/** The fields of a request class (`_tag` included). */
export const fieldsOf = (request: Schema.Schema.Any): Schema.Struct.Fields =>
  (request as unknown as { readonly fields: Schema.Struct.Fields }).fields

/**
 * Adds each member of a request's failure Schema to an endpoint, with the status of its
 * `HttpApiSchema.annotations({ status })`, or `defaultStatus`.
 */
export const addFailures = (endpoint: any, failure: Schema.Schema.All, defaultStatus: number): any => {
  const failures = new Set<Schema.Schema.Any>()
  HttpApiSchema.deunionize(failures, failure as Schema.Schema.Any)
  for (const schema of failures) {
    if (schema.ast._tag === "NeverKeyword") continue
    // a Schema annotated with its status is added as it is (annotating it again would drop its annotations)
    const status = HttpApiSchema.getStatus(schema.ast, defaultStatus)
    endpoint = endpoint.addError(schema, HttpApiSchema.getStatusError(schema) === status ? undefined : { status })
  }
  return endpoint
}

/** Adds errors shared by every endpoint of a group, each with its status. */
export const addGroupErrors = (group: any, errors: ReadonlyArray<readonly [Schema.Schema.Any, number]>): any => {
  for (const [error, status] of errors) {
    group = group.addError(error, HttpApiSchema.getStatusError(error) === status ? undefined : { status })
  }
  return group
}

/** A derived group's request classes and the field its path carries (none: no path id), as annotated. */
export interface Derived {
  readonly requests: ReadonlyArray<Schema.Schema.Any & { readonly _tag: string }>
  readonly idField: string | undefined
}

/** How one kind of derived group (commands, queries) is served, for {@link serveGroup}. */
export interface Serving<Bus, E> {
  /** The annotation its `group` puts on the group. */
  readonly annotation: Context.Tag<any, Derived>
  /** What makes such groups (`CommandApi.group`), named in the failure for a group it did not make. */
  readonly madeBy: string
  readonly configError: (problems: ReadonlyArray<string>) => E
  readonly bus: Effect.Effect<Bus, never, any>
  /** The tags of the requests the bus serves, and the verb for it in a problem ("handle", "answer"). */
  readonly served: (bus: Bus) => ReadonlyArray<string>
  readonly verb: string
  /**
   * The handler of one request class: `build` makes the request from its properties (unvalidated: the bus
   * validates every request it serves); `hasFields` says whether it has fields besides `_tag` and the id.
   */
  readonly handler: (
    bus: Bus,
    build: (props: object) => unknown,
    hasFields: boolean,
    idField: string | undefined
  ) => (request: any) => Effect.Effect<unknown, unknown>
}

/**
 * Serves the derived group `name` of `api`: one handler per request class, on the bus. Fails with the
 * kind's config error when the group was not derived by it, or the bus does not serve one of its requests,
 * so that a wiring mistake is found at startup, not by the first client. Typed by the caller.
 */
export const serveGroup = <Bus, E>(api: HttpApi.HttpApi.Any, name: string, serving: Serving<Bus, E>): unknown =>
  HttpApiBuilder.group(
    api as any,
    name as never,
    ((handlers: unknown) =>
      Effect.gen(function* () {
        const group = (api as unknown as HttpApi.HttpApi.AnyWithProps).groups[name]
        const derived = Option.flatMap(Option.fromNullable(group), (g) =>
          Context.getOption(g.annotations, serving.annotation)
        )
        if (Option.isNone(derived)) {
          return yield* Effect.fail(serving.configError([`the group ${name} was not made by ${serving.madeBy}`]))
        }
        const { idField, requests } = derived.value
        const bus = yield* serving.bus
        const served = new Set(serving.served(bus))
        const missing = requests
          .filter((r) => !served.has(r._tag))
          .map((r) => `the bus does not ${serving.verb} ${r._tag}`)
        if (missing.length > 0) return yield* Effect.fail(serving.configError(missing))
        let built = handlers as any
        for (const request of requests) {
          const Class = request as unknown as new (props: object, disableValidation: boolean) => unknown
          const hasFields = Object.keys(fieldsOf(request)).some((field) => field !== "_tag" && field !== idField)
          built = built.handle(
            uncapitalize(request._tag),
            serving.handler(bus, (props) => new Class(props, true), hasFields, idField)
          )
        }
        return built
      })) as never
  )
