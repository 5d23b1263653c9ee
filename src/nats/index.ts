/**
 * NATS implementations of the library's services: the connection, the command and query buses across processes, the
 * JetStream publisher (the outbox's target) and the event bus (JetStream consumers).
 * A separate entry point (`effect-eventsourcing/nats`) so that users of the core modules do not load the
 * NATS client.
 */
export * as Nats from "./Nats.js"
export * as NatsCommandTransport from "./NatsCommandTransport.js"
export * as NatsQueryTransport from "./NatsQueryTransport.js"
export * as NatsPublisher from "./NatsPublisher.js"
export * as NatsEventBus from "./NatsEventBus.js"
