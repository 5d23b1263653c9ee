/**
 * The console page's files (`src/http/assets/`: HTML, CSS, plain JavaScript, an SVG icon), read once and served with
 * their content type, an ETag (a 304 when the browser has them) and `no-cache` (revalidated on each
 * load). The package ships `src`, so the built module (`dist/src/http/internal/`) finds them there too.
 */
import { createHash } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"

/** The files served, by name. */
export const names = ["console.html", "console.css", "console.js", "console.svg"] as const
export type Name = (typeof names)[number]

const contentTypes: Record<Name, string> = {
  "console.html": "text/html; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.svg": "image/svg+xml"
}

/** Security headers of the page: a strict CSP (its own scripts and styles, same-origin requests only). */
export const pageHeaders: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer"
}

// from src/http/internal/ (sources) or dist/src/http/internal/ (the built package, which ships src/)
const folders = ["../assets/", "../../../../src/http/assets/"].map((relative) =>
  fileURLToPath(new URL(relative, import.meta.url))
)

interface Asset {
  readonly body: Uint8Array
  readonly etag: string
}

const loaded = new Map<Name, Asset>()

/** Reads a file once (a missing file is a packaging bug: a defect). */
const load = (name: Name): Effect.Effect<Asset> =>
  Effect.sync(() => {
    const cached = loaded.get(name)
    if (cached !== undefined) return cached
    const folder = folders.find((f) => existsSync(f + name))
    if (folder === undefined) throw new Error(`effect-eventsourcing: the console asset ${name} is missing`)
    const body = readFileSync(folder + name)
    const asset = { body, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` }
    loaded.set(name, asset)
    return asset
  })

/** The response for a file: 304 when the request's `If-None-Match` has its ETag. */
export const serve = (
  name: Name
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function* () {
    const asset = yield* load(name)
    const request = yield* HttpServerRequest.HttpServerRequest
    const headers = {
      ...(name === "console.html" ? pageHeaders : { "x-content-type-options": "nosniff" }),
      etag: asset.etag,
      "cache-control": "no-cache"
    }
    const match = (request.headers["if-none-match"] ?? "").split(/\s*,\s*/)
    if (match.includes(asset.etag) || match.includes("*")) return HttpServerResponse.empty({ status: 304, headers })
    return HttpServerResponse.uint8Array(asset.body, { contentType: contentTypes[name], headers })
  })
