// Crypto-shredding: a customer's name and e-mail are personal fields, stored sealed with the customer's
// own data key (SqlKeyStore, in the same SQLite database, keys wrapped by a master key from the config).
// Erasing the customer deletes the key: the aggregate still loads, the rebuilt read model shows the
// declared erased values, the other customers are untouched, and no table holds the erased clear values.
import * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { Aggregate, KeyStore, Personal, Projection } from "effect-eventsourcing"
import { SqlCheckpointStore, SqlEventStore, SqlKeyStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"

// the subject of the personal fields is the customer, named by the `customerId` field
const personal = Personal.field(Schema.String, { subject: "customerId", erased: "(erased)" })
export const Registered = Schema.TaggedStruct("Registered", {
  customerId: Schema.String,
  name: personal,
  email: personal,
  country: Schema.String
})
export const PlanChosen = Schema.TaggedStruct("PlanChosen", { plan: Schema.String })

export const Customer = Aggregate.make({
  category: "Customer",
  events: Schema.Union(Registered, PlanChosen),
  initialState: { name: "", plan: "none" },
  evolve: (state, event) =>
    event._tag === "Registered" ? { ...state, name: event.name } : { ...state, plan: event.plan },
  decide: (command: { readonly register?: typeof Registered.Type; readonly plan?: string }) =>
    command.register !== undefined ? [command.register] : [PlanChosen.make({ plan: command.plan ?? "free" })]
})

// a read model of customers in the same database, written with each batch's checkpoint
export const Customers = Projection.make({
  name: "customers",
  events: Customer.codec,
  handle: (event) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      event._tag === "Registered"
        ? sql`insert into customers (id, name, email, country) values
            (${event.customerId}, ${event.name}, ${event.email}, ${event.country})`
        : Effect.void
    ),
  truncate: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`delete from customers`)
})

const register = (id: string, name: string, email: string) =>
  Aggregate.handler(Customer)(id, {
    register: Registered.make({ customerId: id, name, email, country: "FR" })
  })

/** Every row of every table, as text: what a look at the database would find. */
const everything = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const tables = yield* sql<{ readonly name: string }>`select name from sqlite_master where type = 'table'`
  const rows = yield* Effect.forEach(tables, ({ name }) => sql`select * from ${sql(name)}`)
  return JSON.stringify(rows)
})

const readModel = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{ readonly id: string; readonly name: string; readonly email: string }>`
    select id, name, email from customers order by id`
)

export const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table customers (id text primary key, name text, email text, country text)`
  yield* register("ada", "Ada Lovelace", "ada@example.com")
  yield* register("alan", "Alan Turing", "alan@example.com")
  yield* Projection.catchUp(Customers)
  const before = yield* readModel
  // the events table holds the personal fields sealed (the read model, in clear, until the erasure)
  const events = yield* sql<{ readonly data: string }>`select data from es_events`
  const sealedInEvents = !JSON.stringify(events).includes("Ada Lovelace")

  // the erasure request: Ada's key is deleted; nothing else is rewritten
  yield* Effect.flatMap(KeyStore.KeyStore, (keys) => keys.erase("ada"))
  yield* Projection.rebuild(Customers)
  yield* Projection.catchUp(Customers)
  // the aggregate still loads and decides
  const chosen = yield* Aggregate.handler(Customer)("ada", { plan: "pro" })
  const dump = yield* everything
  return {
    before,
    after: yield* readModel,
    version: chosen.version,
    sealedInEvents,
    clearValuesLeft: ["Ada Lovelace", "ada@example.com"].filter((value) => dump.includes(value)),
    otherCustomerReadable: dump.includes("Alan Turing")
  }
})

// the master key comes from the environment (`openssl rand -base64 32`); a fixed demo key otherwise
const masterKey = Config.redacted("MASTER_KEY").pipe(
  Config.withDefault(Redacted.make("ZGVtby1tYXN0ZXIta2V5LW9mLTMyLWJ5dGVzLWxvbmc="))
)

export const AppLive = Layer.mergeAll(
  SqlEventStore.layer(),
  SqlCheckpointStore.layer(),
  Layer.unwrapEffect(Effect.map(masterKey, (key) => SqlKeyStore.layer({ masterKey: key }))),
  Projection.layerRegistry
).pipe(Layer.provideMerge(Sqlite.layer({ filename: ":memory:" })))

export const main = program.pipe(Effect.provide(AppLive))

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main).then(console.log)
