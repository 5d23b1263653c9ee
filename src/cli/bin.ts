#!/usr/bin/env node
/**
 * The `effect-eventsourcing` executable: runs {@link Cli.run} on the process's arguments, on Node.
 */
import { existsSync, readFileSync } from "node:fs"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Cli from "./Cli.js"

/** The package's version, from the nearest package.json above this file (in dist/ or in src/). */
const version = (() => {
  for (let dir = new URL(".", import.meta.url); ; dir = new URL("..", dir)) {
    const file = new URL("package.json", dir)
    if (existsSync(file)) return (JSON.parse(readFileSync(file, "utf8")) as { readonly version: string }).version
    if (new URL("..", dir).href === dir.href) return "unknown"
  }
})()

Cli.run(process.argv, version).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
