/**
 * NATS implementations of the library's services: the connection, and the command bus across processes.
 * A separate entry point (`effect-eventsourcing/nats`) so that users of the core modules do not load the
 * NATS client.
 */
export * as Nats from "./Nats.js"
export * as NatsCommandTransport from "./NatsCommandTransport.js"
