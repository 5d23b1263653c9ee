/**
 * Starts the projection worker process (`projectionWorker.ts`) for the test's scope: killed (SIGKILL) when
 * the scope closes, unless the test ended it before.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

export interface WorkerOptions {
  readonly schema: string
  readonly name: string
  readonly category: string
  readonly tables: string
  readonly partitions: number
  /** Default `worker-process`. */
  readonly workerId?: string
  /** Default `1 second`. */
  readonly leaseTtl?: string
}

export const workerProcess = (options: WorkerOptions): Effect.Effect<ChildProcess, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          fileURLToPath(new URL("./projectionWorker.ts", import.meta.url)),
          options.schema,
          options.name,
          options.category,
          options.tables,
          String(options.partitions),
          ...(options.workerId === undefined ? [] : [options.workerId, options.leaseTtl ?? "1 second"])
        ],
        { stdio: "inherit" }
      )
    ),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )
