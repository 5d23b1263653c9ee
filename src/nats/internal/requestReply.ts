/**
 * Request-reply over NATS, shared by the command and the query transports: one subject per request tag,
 * served in a queue group with bounded concurrency and a drain at release; a reply is the encoded `Exit`
 * of handling the request. Each transport brings its Schemas and its own errors.
 */
import { errors as NatsErrors, type Msg, type Subscription } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Nats } from "../Nats.js"

/** `<prefix>.<tag>`. */
export const subjectOf = (prefix: string, tag: string) => `${prefix}.${tag}`

/** The subject tokens that are not plain (a prefix's tokens, tags, a queue group), as problems. */
export const subjectProblems = (prefix: string, tags: ReadonlyArray<string>, kind: string): Array<string> => {
  const token = /^[A-Za-z0-9_-]+$/
  return [
    ...prefix
      .split(".")
      .filter((t) => !token.test(t))
      .map((t) => `subject prefix token ${JSON.stringify(t)} is not plain`),
    ...tags.filter((t) => !token.test(t)).map((t) => `${kind} tag ${JSON.stringify(t)} cannot be a subject token`)
  ]
}

/** One request tag served: how to handle its requests, encode the reply, and say what went wrong. */
export interface Endpoint {
  readonly tag: string
  /** Handles a request's text (its size already checked); its Exit is the reply. */
  readonly handle: (text: string) => Effect.Effect<unknown, unknown>
  /** The reply of an Exit, or nothing when it does not encode. */
  readonly encode: (exit: Exit.Exit<unknown, unknown>) => Either.Either<string, unknown>
  /** The request was over `maxBytes`. */
  readonly tooLarge: (detail: string) => unknown
  /** This instance has too many requests in progress. */
  readonly overloaded: unknown
  /** The reply could not be sent (`detail` says why). */
  readonly undeliverable: (detail: string) => unknown
}

/** Options of {@link serve}. */
export interface ServeOptions<E> {
  readonly nats: Nats["Type"]
  readonly prefix: string
  readonly queue: string
  readonly concurrency: number
  readonly maxBytes: number
  readonly endpoints: ReadonlyArray<Endpoint>
  /** The span of each request, with `attribute` set to its tag. */
  readonly span: string
  readonly attribute: string
  /** A subscription the server refused. */
  readonly refuse: (problems: ReadonlyArray<string>) => E
}

/**
 * Serves `endpoints` until the scope closes: then it unsubscribes and gives requests in progress up to 10
 * seconds to finish their reply. Requests beyond `concurrency` running and as many waiting are answered at
 * once with the endpoint's `overloaded`. Fails with `refuse` when the server refuses a subscription.
 */
export const serve = <E>(options: ServeOptions<E>): Effect.Effect<void, E, Scope.Scope> =>
  Effect.gen(function* () {
    const { connection } = options.nats
    const { concurrency, maxBytes, queue } = options
    const semaphore = yield* Effect.makeSemaphore(concurrency)
    const requests = yield* FiberSet.make<void>()
    const run = yield* FiberSet.runtime(requests)<never>()
    let inProgress = 0
    const served: Array<Served> = []
    // runs after the subscriptions' finalizers (registered later), before the set interrupts what is left
    yield* Effect.addFinalizer(() =>
      Effect.repeat(FiberSet.size(requests), { until: (n) => n === 0, schedule: Schedule.spaced("10 millis") }).pipe(
        Effect.timeoutOption("10 seconds")
      )
    )
    for (const endpoint of options.endpoints) {
      const failure = (error: unknown) => Either.getOrElse(endpoint.encode(Exit.fail(error)), () => "")
      const answer = (msg: Msg, exit: Exit.Exit<unknown, unknown>) =>
        Effect.sync(() => {
          const encoded = Either.getOrElse(endpoint.encode(exit), () =>
            failure(endpoint.undeliverable("the result could not be encoded"))
          )
          // a reply over the server's payload limit cannot be sent: say so instead of leaving the caller waiting
          msg.respond(
            Buffer.byteLength(encoded) <= (connection.info?.max_payload ?? defaultMaxPayload)
              ? encoded
              : failure(endpoint.undeliverable("the result is too large to send"))
          )
        })
      const handle = (msg: Msg) =>
        (msg.data.length > maxBytes
          ? Effect.fail(endpoint.tooLarge(`${msg.data.length} bytes, the limit is ${maxBytes}`))
          : endpoint.handle(msg.string())
        ).pipe(
          semaphore.withPermits(1),
          Effect.exit,
          Effect.flatMap((exit) => answer(msg, exit)),
          Effect.withSpan(options.span, {
            attributes: { [options.attribute]: endpoint.tag },
            captureStackTrace: false
          })
        )
      // runs inside the client's reader: nothing may throw here (a throw stops it for every subscription)
      const callback = (error: Error | null, msg: Msg) => {
        if (error !== null) return // the server refused the subscription: fails below
        if (inProgress >= 2 * concurrency) {
          // a draining or closed connection refuses the reply: the caller times out, as it would anyway
          Either.try(() => msg.respond(failure(endpoint.overloaded)))
          return
        }
        inProgress++
        run(
          Effect.ensuring(
            handle(msg),
            Effect.sync(() => inProgress--)
          )
        )
      }
      const subject = subjectOf(options.prefix, endpoint.tag)
      served.push({ subject, subscription: connection.subscribe(subject, { queue, callback }) })
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() =>
        served.forEach(({ subscription }) => {
          if (!subscription.isClosed()) subscription.unsubscribe()
        })
      )
    )
    // the subscriptions are known to the server before serving starts, or refused (permissions)
    yield* Effect.promise(() => connection.flush())
    const refused = yield* Effect.forEach(
      served.filter(({ subscription }) => subscription.isClosed()),
      ({ subject, subscription }) =>
        Effect.map(
          Effect.promise(() => subscription.closed),
          (reason) => `${subject}: ${reasonOf(reason)}`
        )
    )
    if (refused.length > 0) return yield* Effect.fail(options.refuse(refused))
  })

/** A subject this instance serves. */
interface Served {
  readonly subject: string
  readonly subscription: Subscription
}

const reasonOf = (reason: void | Error) => (reason instanceof Error ? reason.message : "refused")

/** NATS's default max payload, for a connection that no longer knows the server's. */
const defaultMaxPayload = 1024 * 1024

/** How a client's request failed: timed out, or not delivered (`detail`). */
export interface RequestErrors<E> {
  readonly timeout: (timeoutMillis: number) => E
  readonly transport: (detail: string) => E
}

/**
 * Sends `body` on `subject` and returns the reply's text; fails fast while disconnected instead of waiting
 * for `timeoutMillis`.
 */
export const request = <E>(
  nats: Nats["Type"],
  subject: string,
  body: string,
  timeoutMillis: number,
  errors: RequestErrors<E>
): Effect.Effect<string, E> =>
  Effect.gen(function* () {
    if (!(yield* nats.connected)) return yield* Effect.fail(errors.transport("not connected to NATS"))
    const msg = yield* Effect.tryPromise({
      try: () => nats.connection.request(subject, body, { timeout: timeoutMillis }),
      catch: (cause) =>
        cause instanceof NatsErrors.TimeoutError ||
        (cause instanceof NatsErrors.RequestError && cause.cause instanceof NatsErrors.TimeoutError)
          ? errors.timeout(timeoutMillis)
          : cause instanceof NatsErrors.RequestError && cause.isNoResponders()
            ? errors.transport("no instance serves this request")
            : errors.transport(cause instanceof Error ? cause.message : String(cause))
    })
    return msg.string()
  })

/**
 * The Exit a reply carries, as the caller's: an undecodable reply, or the server's interruption (which is
 * not the caller's), is `transport`'s error.
 */
export const replied = <E>(
  decoded: Either.Either<Exit.Exit<unknown, unknown>, { readonly message: string }>,
  transport: (detail: string) => E
): Effect.Effect<unknown, unknown> => {
  if (Either.isLeft(decoded)) return Effect.fail(transport(`undecodable reply: ${decoded.left.message}`))
  if (Exit.isInterrupted(decoded.right)) return Effect.fail(transport("the request was interrupted on the server"))
  return decoded.right
}
