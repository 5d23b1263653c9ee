/**
 * effect-eventsourcing: event sourcing and CQRS on Effect.
 *
 * Every module is exported as a namespace: `import { Event, EventStore } from "effect-eventsourcing"`.
 * The modules, bottom floor first (each imports only from floors below it; no import cycles):
 * - `Event` (the event model, the command context and the current tenant); `EventStore` (the contract
 *   and its errors) and `Upcaster` (codecs, schema evolution, sealing `Personal` fields with `KeyStore` keys);
 *   `MemoryEventStore`.
 * - `Aggregate`, `Snapshot`; `CommandBus`, `CommandMiddleware`; `Projection` (engine in `projection/`),
 *   `CheckpointStore`, `Wakeup`; `QueryBus` (answered from projections); `Saga`, `SagaStore`; `Outbox`,
 *   `EventBus`, `Inbox`; `Metrics`; `SchemaLock`, `HistoryCheck`; `Retention`; `Tenancy` (decorators over
 *   the contracts: nothing in the core imports it).
 * - Integrations, each behind an entry point of its own: `/sql` (the SQL services, free of drivers), `/pg`,
 *   `/sqlite`, `/mysql` (a backend's client Layer), `/nats`, `/http`, `/observability`, `/testing`.
 * `internal/` holds private helpers shared by two or more modules.
 */
export * as Event from "./Event.js"
export * as EventStore from "./EventStore.js"
export * as MemoryEventStore from "./MemoryEventStore.js"
export * as Upcaster from "./Upcaster.js"
export * as KeyStore from "./KeyStore.js"
export * as Personal from "./Personal.js"
export * as Aggregate from "./Aggregate.js"
export * as Snapshot from "./Snapshot.js"
export * as CheckpointStore from "./CheckpointStore.js"
export * as Projection from "./Projection.js"
export * as Wakeup from "./Wakeup.js"
export * as CommandBus from "./CommandBus.js"
export * as CommandMiddleware from "./CommandMiddleware.js"
export * as QueryBus from "./QueryBus.js"
export * as Saga from "./Saga.js"
export * as SagaStore from "./SagaStore.js"
export * as Outbox from "./Outbox.js"
export * as EventBus from "./EventBus.js"
export * as Inbox from "./Inbox.js"
export * as Tenancy from "./Tenancy.js"
export * as Retention from "./Retention.js"
export * as Metrics from "./Metrics.js"
export * as SchemaLock from "./SchemaLock.js"
export * as HistoryCheck from "./HistoryCheck.js"
