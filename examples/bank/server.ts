/**
 * The bank's HTTP server: Node's, served through `@effect/platform-node`, with a bounded drain when the
 * application stops (SIGTERM or SIGINT close its scope).
 *
 * The drain runs before the routes are taken down and before anything else stops:
 * 1. the server stops accepting: its listening socket closes and idle keep-alive connections are closed;
 *    a request arriving on a connection still open is answered 503 with `Connection: close` (nothing of it
 *    ran: trying again, elsewhere or later, is safe);
 * 2. the requests in flight run to their end and are answered, with `Connection: close`, for up to the
 *    grace period (`BANK_SHUTDOWN_GRACE`, 10 seconds by default);
 * 3. the connections of requests still running after it are closed: their handlers are interrupted and
 *    their clients see the connection end at once rather than wait for an answer that never comes.
 * Then the rest of the application stops: runners between batches, the bus, the stores.
 *
 * **Gotchas**: a command whose connection was closed at the end of the grace period may or may not have
 * been applied (as after any lost connection): read the account before sending it again. The default
 * grace period matches the command bus's 10-second command timeout, so a command that started before the
 * signal normally gets its answer. An orchestrator must wait longer than the grace period before it kills
 * the process (Kubernetes' default `terminationGracePeriodSeconds` is 30).
 */
import * as Http from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/** A Node HTTP server that counts the requests in flight and can stop taking new ones. */
export class DrainingServer extends Http.Server {
  #draining = false
  readonly #inFlight = new Set<Http.ServerResponse>()
  #drained: Array<() => void> = []

  /** Requests received and not answered yet. */
  get inFlight(): number {
    return this.#inFlight.size
  }

  override emit(event: string | symbol, ...args: Array<unknown>): boolean {
    if (event !== "request") return super.emit(event as string, ...args)
    const response = args[1] as Http.ServerResponse
    if (this.#draining) {
      response.writeHead(503, { "content-type": "application/json", connection: "close" })
      response.end(JSON.stringify({ _tag: "Unavailable", message: "The server is shutting down: try again" }))
      return true
    }
    this.#inFlight.add(response)
    response.once("close", () => {
      this.#inFlight.delete(response)
      if (this.#draining && this.#inFlight.size === 0) for (const resume of this.#drained.splice(0)) resume()
    })
    return super.emit(event, ...args)
  }

  /** Stops accepting (see the module's doc); the requests in flight are answered with `Connection: close`. */
  stopAccepting(): void {
    this.#draining = true
    for (const response of this.#inFlight) if (!response.headersSent) response.setHeader("connection", "close")
    // also closes the idle keep-alive connections (Node >= 19)
    if (this.listening) this.close()
  }

  /** Completes when no request is in flight any more (after {@link stopAccepting}). */
  readonly drained: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.#inFlight.size === 0) return resume(Effect.void)
    const done = () => resume(Effect.void)
    this.#drained.push(done)
    return Effect.sync(() => {
      this.#drained = this.#drained.filter((f) => f !== done)
    })
  })
}

/** The server instance, for {@link drainOnShutdown}. */
export class Server extends Context.Tag("bank/Server")<Server, DrainingServer>() {}

/** The HTTP server on `port` (0: a free one), for `HttpApiBuilder.serve`, and its {@link Server}. */
export const layer = (options: { readonly port: number }) =>
  Layer.unwrapEffect(
    Effect.sync(() => {
      const server = new DrainingServer()
      return Layer.merge(
        NodeHttpServer.layer(() => server, { port: options.port }),
        Layer.succeed(Server, server)
      )
    })
  )

/**
 * The bounded drain of the module's doc, run when the scope closes. Put it above the layer serving the
 * routes (`drainOnShutdown(grace).pipe(Layer.provideMerge(routes))`): finalizers run in reverse order, so
 * it runs while the routes and everything they use still work.
 */
export const drainOnShutdown = (gracePeriod: Duration.DurationInput) =>
  Layer.scopedDiscard(
    Effect.flatMap(Server, (server) =>
      Effect.addFinalizer(() =>
        Effect.gen(function* () {
          server.stopAccepting()
          const grace = Duration.decode(gracePeriod)
          yield* Effect.log(
            `shutting down: stopped accepting; ${server.inFlight} request(s) in flight, waiting up to ${Duration.format(grace)} for them`
          )
          // finalizers run uninterruptibly: the wait must be made interruptible for the timeout to end it
          const drained = yield* Effect.timeoutOption(Effect.interruptible(server.drained), grace)
          if (Option.isSome(drained)) return yield* Effect.log("shutting down: every request was answered")
          const left = server.inFlight
          server.closeAllConnections()
          yield* Effect.logWarning(`shutting down: closed ${left} request(s) still running after the grace period`)
        })
      )
    )
  )
