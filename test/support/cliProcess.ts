/**
 * Running the CLI (`src/cli/bin.ts`) as a subprocess, for the CLI tests.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"

/** The repository's root: the CLI runs there. */
export const root = fileURLToPath(new URL("../..", import.meta.url))
/** The CLI's executable, run with `node --import tsx`. */
export const bin = path.join(root, "src", "cli", "bin.ts")

/** What a CLI run printed, and its exit code. */
export interface Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI to its end (killed after 60 s, or when interrupted). */
export const cli = (args: ReadonlyArray<string>): Effect.Effect<Result> =>
  Effect.async<Result>((resume) => {
    const child = spawn(process.execPath, ["--import", "tsx", bin, ...args], { cwd: root })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })
