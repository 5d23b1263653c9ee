/**
 * Headless Chromium for page tests: Debian's `chromium` package driven by `playwright-core`. The binary is
 * `CHROMIUM_PATH`, else the first of the usual install paths; `.ci/run` installs the package when missing.
 */
import * as fs from "node:fs"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type Browser, chromium } from "playwright-core"

const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"]

export const executable = candidates.find((path) => path !== undefined && fs.existsSync(path))

/**
 * A browser for the scope's lifetime. Close it before a server its pages talk to: a Node server's close
 * waits for every open connection, and a page that polls keeps one busy.
 */
export const browser: Effect.Effect<Browser, Error, Scope.Scope> = Effect.acquireRelease(
  Effect.tryPromise({
    try: () =>
      chromium.launch({
        executablePath: executable ?? "chromium",
        headless: true,
        args: ["--no-sandbox"],
        // the acquisition cannot be interrupted: a launch that hangs must end by itself (default 3 minutes)
        timeout: 60_000
      }),
    catch: (cause) => new Error(`cannot start Chromium (${executable ?? "not found"}): ${String(cause)}`)
  }),
  (browser) => Effect.promise(() => browser.close())
)
