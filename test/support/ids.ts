/**
 * Unique names for test isolation: tests run concurrently against shared stores, so every test uses its
 * own stream category and every test file its own schema or table prefix.
 */
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"

/** A fresh stream category (letters and digits only, no `-`). */
export const uniqueCategory: Effect.Effect<string> = Effect.sync(() => `T${randomBytes(6).toString("hex")}`)

/**
 * A schema name or table prefix for one test file, valid for every store (`^[a-z_][a-z0-9_]*$`),
 * readable (derived from the file name) and unique per run.
 */
export const isolatedPrefix = (fileUrl: string): string => {
  const base = path
    .basename(fileURLToPath(fileUrl))
    .replace(/\.test\.ts$/, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 30)
  return `t_${base}_${randomBytes(4).toString("hex")}`
}
