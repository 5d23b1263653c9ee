/**
 * What `CommandApi` and `QueryApi` share to derive HTTP endpoints from `Schema.TaggedRequest` classes:
 * names, fields, and errors with their statuses.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
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
