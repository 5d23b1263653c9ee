/**
 * The bank's schemas match its committed lock (`examples/bank/schema-lock.json`): an event, snapshot or
 * saga state of the bank edited in place without an upcaster fails here, and so does a new version not
 * yet written to the lock (`effect-eventsourcing schema lock write --module examples/bank/schemas.ts
 * --lock examples/bank/schema-lock.json`). The history check of the guide reads what the bank wrote.
 */
import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Aggregate, Event, EventStore, MemoryEventStore } from "effect-eventsourcing"
import { Account } from "../../examples/bank/Account.js"
import { lockCheck, verifyHistory } from "../../examples/guides/schemaLock.js"

it.effect("the bank's schemas match its lock", () => lockCheck)

it.effect("the guide's history check reads what the bank wrote, and finds what it cannot read", () =>
  Effect.gen(function* () {
    const handle = Aggregate.handler(Account)
    yield* handle("1", { _tag: "OpenAccount", owner: "ada" })
    yield* handle("1", { _tag: "Deposit", amount: 10 })
    const clean = yield* verifyHistory
    assert.deepStrictEqual([clean.read, clean.failed], [2, 0])
    // what a later release might have written: a version of MoneyDeposited this one does not know
    const store = yield* EventStore.EventStore
    yield* store.append("Account-2", [
      yield* Event.make({ type: "MoneyDeposited", schemaVersion: 2, data: { cents: 1000 } })
    ])
    const report = yield* verifyHistory
    assert.deepStrictEqual(
      report.types
        .filter((t) => t.failed > 0)
        .map((t) => [t.type, t.version, t.examples.map((e) => `${e.streamId}@${e.version} ${e.codec}`)]),
      // the decider's codec, shared by both projections, decodes (and reports) it once
      [["MoneyDeposited", 2, ["Account-2@1 aggregate Account"]]]
    )
  }).pipe(Effect.provide(MemoryEventStore.layer()))
)
