/**
 * The event store contract through `Tenancy.layerShared`: one tenant's view of a shared store must keep
 * every guarantee of the conformance suite (memory and PostgreSQL underneath).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import * as Tenancy from "../src/Tenancy.js"
import { isolatedPrefix } from "./support/ids.js"
import { pgWithSchema } from "./support/sql.js"
import { suite } from "./suites/EventStoreSuite.js"

/** The shared store as `tenant` sees it: every operation runs for that tenant. */
const asTenant = (tenant: string) =>
  Layer.effect(
    EventStore.EventStore,
    Effect.map(EventStore.EventStore, (store) => {
      const forTenant = Effect.provideService(Event.CurrentTenant, Option.some(tenant))
      const streamForTenant = Stream.provideService(Event.CurrentTenant, Option.some(tenant))
      return EventStore.EventStore.of({
        append: (streamId, events, options) => forTenant(store.append(streamId, events, options)),
        readStream: (streamId, options) => streamForTenant(store.readStream(streamId, options)),
        readStreamPage: (streamId, options) => forTenant(store.readStreamPage(streamId, options)),
        readAll: (options) => streamForTenant(store.readAll(options)),
        readAllPage: (options) => forTenant(store.readAllPage(options)),
        head: forTenant(store.head),
        heldBack: (options) => forTenant(store.heldBack(options)),
        streamVersion: (streamId) => forTenant(store.streamVersion(streamId)),
        findCommand: (commandId) => forTenant(store.findCommand(commandId)),
        deleteStream: (streamId, options) => forTenant(store.deleteStream(streamId, options)),
        undeleteStream: (streamId) => forTenant(store.undeleteStream(streamId)),
        hardDeleteStream: (streamId, options) => forTenant(store.hardDeleteStream(streamId, options)),
        truncateStream: (streamId, before) => forTenant(store.truncateStream(streamId, before)),
        archiveStream: (streamId, options) => forTenant(store.archiveStream(streamId, options)),
        applyRetention: (cut) => forTenant(store.applyRetention(cut))
      })
    })
  ).pipe(Layer.provide(Tenancy.layerShared))

/** What the tenant view does differently, on purpose (see `Tenancy`). */
const differences = {
  "recorded events carry what was appended": "events carry the tenant id in their metadata",
  "arbitrary JSON data and metadata round-trip intact (property)": "events carry the tenant id in their metadata",
  "a tenant selects exactly the streams scoped to it, in global order, with the other filters":
    "a tenant view has no other tenants' streams to select from",
  "partitions split the log by stream: every event in exactly one partition, in global order":
    "partitions hash the stored stream id (<tenant>~<streamId>), not the one the tenant sees",
  "a stream id at the length limit round-trips": "the tenant and its separator take their length from the limit",
  "global reads of a tenant no stream can have (NUL) read nothing, without an error":
    "a tenant-scoped store reads its own tenant, whatever the option says"
}

suite(
  "Tenancy.layerShared on memory (tenant acme)",
  asTenant("acme").pipe(Layer.provide(MemoryEventStore.layer())),
  differences
)

const schema = isolatedPrefix(import.meta.url)
suite(
  "Tenancy.layerShared on PostgreSQL (tenant acme)",
  asTenant("acme").pipe(Layer.provide(SqlEventStore.layer({ schema })), Layer.provide(pgWithSchema(schema))),
  differences
)
