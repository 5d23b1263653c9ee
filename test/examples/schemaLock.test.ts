/**
 * The bank's schemas match its committed lock (`examples/bank/schema-lock.json`): an event, snapshot or
 * saga state of the bank edited in place without an upcaster fails here, and so does a new version not
 * yet written to the lock (`effect-eventsourcing schema lock write --module examples/bank/schemas.ts
 * --lock examples/bank/schema-lock.json`).
 */
import { readFileSync } from "node:fs"
import { it } from "@effect/vitest"
import { SchemaLockSpec } from "effect-eventsourcing/testing"
import { schemas } from "../../examples/bank/schemas.js"

const lock = readFileSync(new URL("../../examples/bank/schema-lock.json", import.meta.url), "utf8")

it.effect("the bank's schemas match its lock", () => SchemaLockSpec.check(schemas, lock, { unlocked: "fail" }))
