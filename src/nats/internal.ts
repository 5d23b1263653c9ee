/**
 * What the NATS modules share and do not export: telling JetStream's "not found" answers apart from
 * failures. In a cluster a JetStream API request can time out or find no responder while a leader is
 * elected; only a definite "not found" means the stream or consumer is missing (and may be created).
 */
import {
  type ConsumerInfo,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type StreamInfo
} from "@nats-io/jetstream"
import * as Effect from "effect/Effect"

/** The stream's info, `undefined` if JetStream says it does not exist; any other failure fails. */
export const streamInfoOrUndefined = (
  jsm: JetStreamManager,
  stream: string
): Effect.Effect<StreamInfo | undefined, unknown> =>
  unlessNotFound(() => jsm.streams.info(stream), JetStreamApiCodes.StreamNotFound)

/** The consumer's info, `undefined` if JetStream says it does not exist; any other failure fails. */
export const consumerInfoOrUndefined = (
  jsm: JetStreamManager,
  stream: string,
  consumer: string
): Effect.Effect<ConsumerInfo | undefined, unknown> =>
  unlessNotFound(() => jsm.consumers.info(stream, consumer), JetStreamApiCodes.ConsumerNotFound)

/** The request's answer, or `undefined` if JetStream answered with the API error `code`. */
const unlessNotFound = <A>(request: () => Promise<A>, code: number): Effect.Effect<A | undefined, unknown> =>
  Effect.tryPromise({ try: request, catch: (cause) => cause }).pipe(
    Effect.catchIf(
      (cause) => cause instanceof JetStreamApiError && cause.code === code,
      () => Effect.succeed(undefined)
    )
  )
