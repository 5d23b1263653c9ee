/**
 * The bank's schemas, for its schema lock (`schema-lock.json`, checked in `npm test`) and for verifying a
 * database's history before a deploy: `effect-eventsourcing schema lock check --module examples/bank/schemas.ts`.
 */
import { SchemaLock } from "effect-eventsourcing"
import { Account } from "./Account.js"
import { Balances, History } from "./readModels.js"
import { Transfer } from "./Transfer.js"

export const schemas = SchemaLock.sources({
  aggregates: [Account],
  projections: [Balances, History],
  sagas: [Transfer]
})
