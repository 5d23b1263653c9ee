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
  Effect.tryPromise({
    try: () =>
      jsm.streams.info(stream).catch((cause: unknown) => {
        if (isApiError(cause, JetStreamApiCodes.StreamNotFound)) return undefined
        throw cause
      }),
    catch: (cause) => cause
  })

/** The consumer's info, `undefined` if JetStream says it does not exist; any other failure fails. */
export const consumerInfoOrUndefined = (
  jsm: JetStreamManager,
  stream: string,
  consumer: string
): Effect.Effect<ConsumerInfo | undefined, unknown> =>
  Effect.tryPromise({
    try: () =>
      jsm.consumers.info(stream, consumer).catch((cause: unknown) => {
        if (isApiError(cause, JetStreamApiCodes.ConsumerNotFound)) return undefined
        throw cause
      }),
    catch: (cause) => cause
  })

const isApiError = (cause: unknown, code: number) => cause instanceof JetStreamApiError && cause.code === code
