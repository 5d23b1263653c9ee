// npm install effect-eventsourcing effect @effect/sql @effect/experimental @effect/sql-pg pg @types/pg \
//   @nats-io/transport-node @nats-io/jetstream \
//   @effect/platform @effect/opentelemetry @opentelemetry/api @opentelemetry/sdk-trace-base
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { Outbox, Projection } from "effect-eventsourcing"
import { Nats, NatsPublisher } from "effect-eventsourcing/nats"
import { Otel } from "effect-eventsourcing/observability"
import { Postgres } from "effect-eventsourcing/pg"
import { SqlCheckpointStore, SqlEventStore } from "effect-eventsourcing/sql"
import { openAndDeposit } from "./account.js"

const url = process.env.PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const servers = process.env.NATS_URL ?? "nats://127.0.0.1:4222"

const Stores = Layer.mergeAll(
  SqlEventStore.layer({ schema: "quickstart" }),
  SqlCheckpointStore.layer({ schema: "quickstart" }),
  Projection.layerRegistry
).pipe(Layer.provideMerge(Postgres.layerWakeup()), Layer.provideMerge(Postgres.layer({ url })))

// the outbox relay publishes every committed event to JetStream (message id = event id), as a fiber
const Relay = Outbox.relayLayer().pipe(
  Layer.provide(NatsPublisher.layer({ stream: "QUICKSTART", subjectPrefix: "quickstart" })),
  Layer.provide(Nats.layer({ servers }))
)

// traces and metrics over OTLP/HTTP, configured by the standard OTEL_* environment variables
const Telemetry = Otel.layerOtlp({ serviceName: "quickstart" }).pipe(Layer.provide(FetchHttpClient.layer))

export const program = Effect.gen(function* () {
  const result = yield* openAndDeposit(crypto.randomUUID())
  // wait until the relay (started with the program) has published the two events and JetStream acked them
  const registry = yield* Projection.Registry
  const published = (status: Projection.Status) => status.owned.reduce((n, partition) => n + partition.processed, 0)
  yield* registry.statuses.pipe(
    Effect.filterOrFail((statuses) => statuses.some((s) => s.name === "outbox" && published(s) >= 2)),
    Effect.retry(Schedule.spaced("20 millis"))
  )
  return result
})

export const main = program.pipe(Effect.provide(Relay.pipe(Layer.provideMerge(Stores), Layer.provideMerge(Telemetry))))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(main).then((result) => console.log(`Account at version ${result.version}, published`))
}
