// A JetStream cluster of three nodes: the connection knows them all, the streams have three replicas, and
// the relay and the event bus go on while any one node is down.
import * as Layer from "effect/Layer"
import { Outbox } from "effect-eventsourcing"
import { Nats, NatsEventBus, NatsPublisher } from "effect-eventsourcing/nats"

const nats = Nats.layer({
  // seed URLs: the client picks one at random, tries the others if it is down, and learns the rest of
  // the cluster from the server it reaches
  servers: ["nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222"],
  name: "relay-1"
})
const publisher = NatsPublisher.layer({ stream: "EVENTS", replicas: 3 })
const bus = NatsEventBus.layer({ stream: "EVENTS", replicas: 3 }) // the dead-letter stream's replicas

// the relay publishes to the replicated stream; the bus's groups read it (the publisher creates it)
export const Messaging = Layer.mergeAll(Outbox.relayLayer(), Layer.provide(bus, publisher)).pipe(
  Layer.provide(publisher),
  Layer.provide(nats)
)
