import { readFileSync } from "node:fs"
import * as Effect from "effect/Effect"
import { HistoryCheck } from "effect-eventsourcing"
import { SchemaLockSpec } from "effect-eventsourcing/testing"
import { schemas } from "../bank/schemas.js"

// in the test suite: the bank's codecs against its committed lock; a stored version edited in place fails,
// and so does a new version not yet written to the lock
export const lockCheck = SchemaLockSpec.check(
  schemas,
  readFileSync(new URL("../bank/schema-lock.json", import.meta.url), "utf8"),
  { unlocked: "fail" }
)

// before a deploy: does this release read the stored history? (a sample of each type and version, 5 minutes at most)
export const verifyHistory = HistoryCheck.verify(schemas, {
  sample: 10_000,
  timeLimit: "5 minutes",
  onProgress: (p) => Effect.log(`${p.read} events read (~${p.done}/${p.total}), ${p.failed} failed`)
}).pipe(
  Effect.tap((report) =>
    Effect.forEach(
      report.types.filter((t) => t.failed > 0),
      (t) => Effect.logError(`${t.type} v${t.version}: ${t.failed} undecodable, e.g.`, t.examples[0])
    )
  )
)
