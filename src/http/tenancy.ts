/**
 * The event browser for one tenant per request (see `Tenancy`): the tenant comes from a request header,
 * and every handler runs inside it, so the API reads that tenant's streams only. A request without the
 * header, or with an invalid tenant id, gets a 400 (`TenantRequired`) and reaches no handler.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Tenancy from "../Tenancy.js"

/** Wraps an HTTP app so each request runs for the tenant named by `header` (case-insensitive). */
export const middleware =
  (header: string) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const tenant = request.headers[header.toLowerCase()]
      const refused = HttpServerResponse.unsafeJson(
        { _tag: "TenantRequired", message: `the ${header} header must name a tenant (a-z, 0-9, _; 1 to 63)` },
        { status: 400 }
      )
      return tenant === undefined
        ? Effect.succeed(refused)
        : Effect.catchTag(Tenancy.withTenant(tenant)(app), "InvalidTenant", () => Effect.succeed(refused))
    })
