/**
 * A NATS connection as a scoped service, for the NATS-backed services (command transport, outbox
 * publisher, event bus). It reconnects forever (`maxReconnectAttempts: -1`), skips async stack traces
 * (`noAsyncTraces`, a large saving per message), drains on release, and tracks whether it is connected,
 * so that callers fail fast instead of publishing into a disconnected client (which drops silently).
 */
import { connect, type NatsConnection } from "@nats-io/transport-node"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"

/** A NATS operation failed (cannot connect, connection closed...). */
export class NatsError extends Schema.TaggedError<NatsError>()("NatsError", {
  operation: Schema.String,
  cause: Schema.Defect
}) {
  override get message() {
    return `NATS ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** The connection service. */
export class Nats extends Context.Tag("effect-eventsourcing/Nats")<
  Nats,
  {
    readonly connection: NatsConnection
    /** Whether the client is connected now (false while it reconnects). */
    readonly connected: Effect.Effect<boolean>
  }
>() {}

/** Options of {@link layer}. */
export interface Options {
  /**
   * `nats://host:port`, or several: the seeds of a cluster (the client tries them in random order and
   * learns the cluster's other nodes from the one it reaches; see docs/outbox-and-nats.md).
   */
  readonly servers: string | ReadonlyArray<string>
  /** Connection name, shown by the server. */
  readonly name?: string
}

/** Connects (failing the Layer if no server answers), and drains the connection when released. */
export const layer = (options: Options): Layer.Layer<Nats, NatsError> =>
  Layer.scoped(
    Nats,
    Effect.gen(function* () {
      const connection = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            connect({
              servers: typeof options.servers === "string" ? options.servers : [...options.servers],
              maxReconnectAttempts: -1,
              noAsyncTraces: true,
              ...(options.name === undefined ? {} : { name: options.name })
            }),
          catch: (cause) => new NatsError({ operation: "connect", cause })
        }),
        // draining waits on the server: with the server gone it would wait forever, so it is bounded
        (nc) =>
          Effect.promise(() => nc.drain().catch(() => nc.close())).pipe(
            Effect.timeoutOption("5 seconds"),
            Effect.zipRight(Effect.promise(() => nc.close()))
          )
      )
      const connected = yield* Ref.make(true)
      // read the status iterator by hand: closing a Stream over it would wait on its `return()`, which
      // nats.js does not settle once requests were made
      const statuses = connection.status()[Symbol.asyncIterator]()
      yield* Effect.gen(function* () {
        while (true) {
          const next = yield* Effect.promise(() => statuses.next())
          if (next.done === true) return
          const type = next.value.type
          if (type === "disconnect" || type === "close") yield* Ref.set(connected, false)
          if (type === "reconnect") yield* Ref.set(connected, true)
        }
      }).pipe(Effect.forkScoped)
      return Nats.of({
        connection,
        connected: Effect.map(Ref.get(connected), (c) => c && !connection.isClosed())
      })
    })
  )
