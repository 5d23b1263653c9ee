/**
 * The schema lock as a test: {@link check} compares the application's codecs, snapshot states and saga
 * states with its committed lock file and fails, one line per change, when a stored version changed in a
 * way its stored data may not survive (see `SchemaLock.compare`). Run it in the test suite so that CI
 * refuses an event schema edited in place.
 *
 * ```ts
 * it.effect("the schemas match the lock", () =>
 *   SchemaLockSpec.check(schemas, readFileSync("schema-lock.json", "utf8"), { unlocked: "fail" }))
 * ```
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaLock from "../SchemaLock.js"

/** The schemas do not match the lock (or the lock file is invalid): every change, one per line. */
export class SchemaLockSpecFailure extends Schema.TaggedError<SchemaLockSpecFailure>()("SchemaLockSpecFailure", {
  changes: Schema.Array(Schema.String)
}) {
  override get message() {
    return `the schemas do not match the lock:\n${this.changes.map((c) => `  - ${c}`).join("\n")}`
  }
}

/**
 * Checks `sources` against a lock: the lock file's text, or its parsed content. Breaking changes fail;
 * versions not in the lock yet (and compatible changes not recorded) pass by default, and fail with
 * `unlocked: "fail"`, which keeps a committed lock up to date (write it with `effect-eventsourcing schema
 * lock write`). Succeeds with the comparison, whose `lock` records the additions.
 */
export const check = (
  sources: SchemaLock.Sources,
  lock: string | unknown,
  options?: { readonly unlocked?: "pass" | "fail" }
): Effect.Effect<SchemaLock.Comparison, SchemaLockSpecFailure> =>
  (typeof lock === "string" ? SchemaLock.parse(lock) : SchemaLock.decode(lock)).pipe(
    Effect.flatMap((parsed) => SchemaLock.check(parsed, sources, options)),
    Effect.mapError(
      (error) =>
        new SchemaLockSpecFailure({
          changes: error._tag === "SchemaLockMismatch" ? error.changes.map((c) => c.message) : error.problems
        })
    )
  )
