// Multi-tenancy: two tenants use the same account id, `Account-1`, and each sees only its own stream.
// Two strategies, same program: one shared store whose streams are scoped by tenant (`Tenancy.layerShared`),
// or a store per tenant, built on first use (`Tenancy.layerPerTenant`: here a SQLite database each).
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { Aggregate, EventStore, Tenancy } from "effect-eventsourcing"
import { SqlEventStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { Account } from "../bank/Account.js"

const handle = Aggregate.handler(Account)

/** What a tenant reads of `Account-1`, and of the whole log. */
const view = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const stream = yield* Stream.runCollect(store.readStream("Account-1"))
  const all = yield* Stream.runCount(store.readAll())
  return {
    events: Chunk.toReadonlyArray(stream).map((e) => `${e.type} ${JSON.stringify(e.data)}`),
    tenantInMetadata: Chunk.unsafeHead(stream).metadata.tenantId,
    eventsInLog: all
  }
})

export const program = Effect.gen(function* () {
  // every operation runs for the tenant of its context: at the edge, from an authenticated source
  yield* Tenancy.withTenant("acme")(handle("1", { _tag: "OpenAccount", owner: "Ada" }))
  yield* Tenancy.withTenant("acme")(handle("1", { _tag: "Deposit", amount: 100 }))
  yield* Tenancy.withTenant("globex")(handle("1", { _tag: "OpenAccount", owner: "Grace" }))
  const acme = yield* Tenancy.withTenant("acme")(view)
  const globex = yield* Tenancy.withTenant("globex")(view)
  // without a tenant, every store operation fails with a typed error
  const noTenant = yield* Effect.flip(handle("1", { _tag: "Deposit", amount: 1 }))
  return { acme, globex, withoutTenant: noTenant._tag }
})

// one store for all tenants: streams are stored as `<tenant>~<streamId>`, and reads filter on the tenant
export const SharedLive = Tenancy.layerShared.pipe(
  Layer.provide(SqlEventStore.layer()),
  Layer.provide(Sqlite.layer({ filename: ":memory:" }))
)

// a store per tenant (a database or schema each), built from the tenant id on first use
export const PerTenantLive = Tenancy.layerPerTenant((_tenant) =>
  SqlEventStore.layer().pipe(Layer.provide(Sqlite.layer({ filename: ":memory:" })))
)

export const main = Effect.all({
  shared: Effect.provide(program, SharedLive),
  perTenant: Effect.provide(program, PerTenantLive)
})

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main).then((r) => console.dir(r, { depth: 4 }))
