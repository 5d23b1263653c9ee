/**
 * Publishing events to NATS JetStream: the outbox relay's `Outbox.Publisher`. The message id is the event
 * id, so JetStream drops a re-published event within its duplicate window; publishes are pipelined in
 * order; the stream is created, or its configuration checked, at startup. Subjects, retries of failed
 * publishes, ordering and the Gotchas: {@link layer}.
 */
import { createInbox, type Msg, headers as natsHeaders } from "@nats-io/transport-node"
import { jetstreamManager, StorageType } from "@nats-io/jetstream"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Event from "../Event.js"
import * as Traceparent from "../internal/traceparent.js"
import { type Ack, Publisher, PublishError } from "../Outbox.js"
import { streamInfoOrUndefined } from "./internal.js"
import { Nats } from "./Nats.js"

/** Options of {@link layer}. */
export interface Options {
  /** JetStream stream name. */
  readonly stream: string
  /** First subject token; default `"events"`. The stream captures `<prefix>.>`. */
  readonly subjectPrefix?: string
  /** Default 2 minutes (at most the stream's max age). */
  readonly duplicateWindow?: Duration.DurationInput
  /** Default `file`. */
  readonly storage?: "file" | "memory"
  /**
   * Copies of the stream JetStream keeps, on as many servers of a cluster (1 to 5); default 1. Use 3 on a
   * three-node cluster, so that the stream survives a node lost (see docs/outbox-and-nats.md). Checked
   * against an existing stream only when given.
   */
  readonly replicas?: number
  /** Publishes in flight at most; default 256. */
  readonly window?: number
  /** A publish fails once no ack came for this long (give or take a quarter); default 5 seconds. */
  readonly timeout?: Duration.DurationInput
  /**
   * Prefix of the subjects the acks come back on; default `_INBOX`. Where permissions restrict inboxes,
   * use the connection's own `inboxPrefix`.
   */
  readonly inboxPrefix?: string
}

/** Escapes what NATS reads in a subject token: `.`, `*`, `>`, whitespace, and `~` itself. */
export const token = (raw: string): string =>
  raw.length === 0
    ? "~"
    : // most tokens need no escape: the cheap test first
      !special.test(raw)
      ? raw
      : raw.replace(specials, (c) => `~${c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`)

const special = /[.*>~\s\u0000-\u001f\u007f]/
const specials = new RegExp(special.source, "g")

/**
 * Creates or checks the stream, then publishes. Needs the `Nats` connection.
 *
 * - Subjects are `<prefix>.<category>.<streamId>.<type>`; characters NATS gives a meaning in subjects
 *   (`.`, `*`, `>`, whitespace) and `~` are escaped inside tokens as `~XX` (hex), so distinct events
 *   never share a subject token by accident.
 * - The message id (`Nats-Msg-Id`) is the event id: JetStream drops a re-published event within the
 *   stream's duplicate window and acks it with `duplicate: true`.
 * - Publishes are pipelined: up to `window` in flight, started in order (JetStream stores them in the
 *   order they arrive, so one publisher keeps each stream's order). A JetStream publish is a core NATS
 *   publish whose reply subject receives the stream's ack; the publisher sends them itself, with reply
 *   subjects under one inbox subscription of its own, instead of as one client request each (a request
 *   costs a timer, a promise and an error object per message: this halves the client CPU per event).
 * - At startup the stream is created, or its configuration checked (subjects, duplicate window,
 *   storage, and replicas when given): a mismatch is an error, never silently changed. Only JetStream's
 *   "not found" creates it: a stream info request that timed out (a leader election) fails the Layer.
 * - In a cluster, publishes answered "no responders" or not at all while the stream's leader is elected
 *   fail as transient errors: the relay retries them under the same message ids.
 *
 * - A publish that failed may still have been stored. Retried within the duplicate window, JetStream
 *   drops it; retried later (a long outage), the publisher first looks for it as the last message on its
 *   subject and, if found there, acks it as a duplicate instead of storing it again.
 *
 * **Gotchas**: past the duplicate window, an event stored by a failed publish and followed by a later
 * event of the same stream and type is not found by that check and may be stored twice; so may one whose
 * failed publish was made by another process (or before a restart), which this publisher does not know
 * of. Alert on the relay's lag in seconds (the age of the oldest unpublished event) well before the window.
 * A single-replica file stream syncs to disk periodically: acknowledged messages can be lost in an OS
 * crash unless the stream is replicated (or `sync_interval` is `always` on the server).
 * Pipelining keeps each stream's order as long as JetStream stores or refuses the messages of a batch
 * from the first refusal on: one that refuses a single event (a stream at its limits with the `new`
 * discard policy, storage running out) while later events of the same aggregate are stored already has
 * that event stored after them when it is retried. Where that order must hold even then, set `window: 1`.
 * If the server ends the ack subscription (permissions), publishes fail at once and the next one
 * subscribes again; a refused subscription at startup fails the layer.
 */
export const layer = (options: Options): Layer.Layer<Publisher, PublishError, Nats> =>
  Layer.scoped(
    Publisher,
    Effect.gen(function* () {
      const { connection } = yield* Nats
      const prefix = options.subjectPrefix ?? "events"
      const subjects = [`${prefix}.>`]
      const window = Duration.toMillis(options.duplicateWindow ?? "2 minutes")
      const storage = options.storage === "memory" ? StorageType.Memory : StorageType.File
      const failed = (operation: string) => (cause: unknown) => new PublishError({ operation, detail: detailOf(cause) })
      const jsm = yield* Effect.tryPromise({ try: () => jetstreamManager(connection), catch: failed("connect") })
      const info = yield* streamInfoOrUndefined(jsm, options.stream).pipe(Effect.mapError(failed("stream info")))
      if (info === undefined) {
        yield* Effect.tryPromise({
          try: () =>
            jsm.streams.add({
              name: options.stream,
              subjects,
              duplicate_window: window * 1_000_000,
              storage,
              num_replicas: options.replicas ?? 1
            }),
          catch: failed("create stream")
        })
      } else {
        const problems = [
          options.replicas === undefined || info.config.num_replicas === options.replicas
            ? undefined
            : `${info.config.num_replicas} replicas`,
          subjects.every((s) => info.config.subjects?.includes(s)) ? undefined : `subjects ${info.config.subjects}`,
          info.config.duplicate_window === window * 1_000_000
            ? undefined
            : `duplicate window ${info.config.duplicate_window / 1_000_000} ms`,
          info.config.storage === storage ? undefined : `storage ${info.config.storage}`
        ].filter((p) => p !== undefined)
        if (problems.length > 0) {
          return yield* new PublishError({
            operation: "check stream",
            detail: `stream ${options.stream} exists with ${problems.join(", ")}`
          })
        }
      }
      const maxInFlight = Math.max(1, options.window ?? 256)
      const subjectOf = (event: Event.RecordedEvent) =>
        `${prefix}.${token(event.category)}.${token(event.streamId)}.${token(event.type)}`

      const timeout = Duration.toMillis(options.timeout ?? "5 seconds")
      // the acks of every publish come to one subscription: `<inbox>.<publish call>.<index in the batch>`
      const inbox = yield* Effect.try({ try: () => createInbox(options.inboxPrefix), catch: failed("configure") })
      const calls = new Map<string, Call>()
      let lastCall = 0
      let subscriptionError: Error | undefined
      const onAck = (error: Error | null, reply: Msg) => {
        if (error !== null) {
          // the server ended the subscription (a permissions violation): no ack can reach a call now
          subscriptionError = error
          const failure = new PublishError({ operation: "subscribe", detail: `acks on ${inbox}.>: ${detailOf(error)}` })
          for (const call of [...calls.values()]) call.fail(failure)
          return
        }
        const key = reply.subject.slice(inbox.length + 1)
        const dot = key.indexOf(".")
        // a late ack of a publish that failed or finished is dropped: that publish was retried, or done
        const call = dot > 0 ? calls.get(key.slice(0, dot)) : undefined
        if (call === undefined) return
        // this runs inside the client's reader: a throw would stop it reading for every subscription
        const handled = Either.try(() => call.reply(Number(key.slice(dot + 1)), reply))
        if (Either.isLeft(handled)) call.fail(publishFailure(handled.left))
      }
      /** Subscribes to the acks and waits for the server to take the subscription (or refuse it). */
      const subscribe = Effect.gen(function* () {
        subscriptionError = undefined
        const subscription = yield* Effect.try({
          try: () => connection.subscribe(`${inbox}.>`, { callback: onAck }),
          catch: failed("subscribe")
        })
        // the server answers a subscription it refuses before the flush (during an outage: after `timeout`)
        yield* Effect.tryPromise({ try: () => connection.flush(), catch: failed("subscribe") }).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new PublishError({ operation: "subscribe", detail: `no answer within ${timeout} ms` })
          })
        )
        if (subscription.isClosed()) {
          return yield* new PublishError({
            operation: "subscribe",
            detail: `acks on ${inbox}.>: ${subscriptionError === undefined ? "refused" : detailOf(subscriptionError)}`
          })
        }
        return subscription
      })
      let subscription = yield* subscribe
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          if (!subscription.isClosed()) subscription.unsubscribe()
        })
      )
      /** The ack subscription, subscribed again if the server ended it (permissions may have changed back). */
      const ensureSubscribed = Effect.suspend(() =>
        subscription.isClosed() ? Effect.map(subscribe, (renewed) => void (subscription = renewed)) : Effect.void
      )

      /** Starts one event's publish, its ack going to `reply`; a failure if the client refuses it. */
      const send = (event: Event.RecordedEvent, reply: string) =>
        Either.try(() => {
          const h = natsHeaders()
          h.set("Nats-Msg-Id", event.eventId)
          h.set("Ees-Stream-Id", event.streamId)
          h.set("Ees-Version", String(event.version))
          h.set("Ees-Type", event.type)
          h.set("Ees-Schema-Version", String(event.schemaVersion))
          // a malformed one (a line break in it would be refused as a header) is not passed on
          const traceparent = event.metadata.traceparent
          if (Option.isSome(Traceparent.parse(traceparent))) h.set("traceparent", traceparent as string)
          connection.publish(subjectOf(event), JSON.stringify({ data: event.data, metadata: event.metadata }), {
            reply,
            headers: h
          })
        })

      // when each event's publish first failed (it may have been stored all the same): retried later than
      // half the duplicate window, JetStream may no longer drop it, so the stream is checked first. Bounded:
      // an event relayed elsewhere since (its partition moved) or parked is never acked here
      const failedSince = new Map<string, number>()
      const rememberFailed = (eventId: string, now: number) => {
        if (failedSince.has(eventId)) return
        // the oldest is forgotten first (a Map iterates in insertion order)
        if (failedSince.size >= maxRememberedFailures) failedSince.delete(failedSince.keys().next().value!)
        failedSince.set(eventId, now)
      }

      /** The event's sequence if it is the last message on its subject (the check's reach, see the doc). */
      const storedAs = (event: Event.RecordedEvent) =>
        Effect.tryPromise({
          try: () => jsm.streams.getMessage(options.stream, { last_by_subj: subjectOf(event) }),
          catch: failed("check stream")
        }).pipe(
          Effect.map((msg) => (msg !== null && msg.header.get("Nats-Msg-Id") === event.eventId ? msg.seq : undefined))
        )

      /** The events a retry past half the duplicate window finds in the stream already, with their acks. */
      const alreadyStored = (events: ReadonlyArray<Event.RecordedEvent>, now: number) =>
        Effect.gen(function* () {
          const found = new Map<string, Ack>()
          for (const event of events) {
            const since = failedSince.get(event.eventId)
            if (since === undefined || now - since <= window / 2) continue
            yield* Effect.logWarning(
              `event ${event.eventId} unpublished for ${now - since} ms (duplicate window ${window} ms): checking the stream`
            )
            const seq = yield* storedAs(event)
            if (seq !== undefined) found.set(event.eventId, { eventId: event.eventId, sequence: seq, duplicate: true })
          }
          return found
        })

      /**
       * Publishes in order with at most `options.window` in flight: the acks in order, or the first failure.
       * Plain callbacks rather than a fiber per event: the sends start in order and the CPU per event stays
       * close to the client's own. A publish made while the client is disconnected is dropped silently, so
       * no ack ever comes: once none came for `timeout` (give or take a quarter), the publish fails.
       */
      const pipelined = (events: ReadonlyArray<Event.RecordedEvent>, found: ReadonlyMap<string, Ack>, now: number) =>
        Effect.suspend(() => {
          const call = String(++lastCall)
          const replyPrefix = `${inbox}.${call}.`
          const acks = new Array<Ack>(events.length)
          let next = 0
          let inFlight = 0
          let acked = 0
          let stopped = false
          let resume: (effect: Effect.Effect<ReadonlyArray<Ack>, PublishError>) => void = () => {}
          const stop = () => {
            stopped = true
            calls.delete(call)
          }
          // every event sent and not acked may have been stored all the same
          const rememberUnacked = () => {
            for (let i = 0; i < next; i++) if (acks[i] === undefined) rememberFailed(events[i]!.eventId, now)
          }
          const fail = (error: PublishError) => {
            if (stopped) return
            stop()
            if (error.transient) rememberUnacked()
            resume(Effect.fail(error))
          }
          const settle = (index: number, ack: Ack) => {
            if (stopped || acks[index] !== undefined) return
            acks[index] = ack
            inFlight--
            acked++
            if (acked === events.length) {
              stop()
              resume(Effect.succeed(acks))
            } else if (!launching) launch()
          }
          let launching = false
          const launch = () => {
            launching = true
            while (!stopped && next < events.length && inFlight < maxInFlight) {
              const index = next++
              const event = events[index]!
              const stored = found.get(event.eventId)
              inFlight++
              if (stored !== undefined) {
                settle(index, stored)
                continue
              }
              const sent = send(event, replyPrefix + index)
              if (Either.isLeft(sent)) fail(publishFailure(sent.left))
            }
            launching = false
          }
          const onReply = (index: number, reply: Msg) => {
            // only a reply for an event sent and not acked yet counts (anything can publish to the inbox)
            if (!Number.isInteger(index) || index < 0 || index >= next || acks[index] !== undefined) return
            const event = events[index]!
            const answer = ackOf(reply)
            if (Either.isLeft(answer)) return fail(answer.left)
            failedSince.delete(event.eventId)
            settle(index, { eventId: event.eventId, sequence: answer.right.seq, duplicate: answer.right.duplicate })
          }
          const publishing = Effect.async<ReadonlyArray<Ack>, PublishError>((resumeWith) => {
            resume = resumeWith
            calls.set(call, { reply: onReply, fail })
            if (events.length === 0) {
              stop()
              return resumeWith(Effect.succeed([]))
            }
            launch()
            return Effect.sync(() => {
              if (stopped) return
              stop()
              rememberUnacked()
            })
          })
          // checks four times per `timeout` whether an ack came since
          const watchdog = Effect.gen(function* () {
            let seen = -1
            let idle = 0
            while (true) {
              yield* Effect.sleep(timeout / 4)
              idle = acked === seen ? idle + 1 : 0
              seen = acked
              if (idle >= 4) {
                fail(new PublishError({ operation: "publish", detail: `no ack within ${timeout} ms` }))
                return yield* Effect.never
              }
            }
          })
          return Effect.raceFirst(publishing, watchdog)
        })

      return Publisher.of({
        subjectOf,
        // the checks come first, so the sends still start in the events' order
        publish: (events) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            yield* ensureSubscribed
            const found = yield* alreadyStored(events, now)
            for (const eventId of found.keys()) failedSince.delete(eventId)
            return yield* pipelined(events, found, now)
          }).pipe(
            Effect.withSpan("Outbox.publish", { attributes: { events: events.length }, captureStackTrace: false })
          )
      })
    })
  )

/** A publish call waiting for its acks: where its replies go, and how it fails when none can come. */
interface Call {
  readonly reply: (index: number, reply: Msg) => void
  readonly fail: (error: PublishError) => void
}

/** Events whose failed publish is remembered at most (see `failedSince`). */
const maxRememberedFailures = 100_000

const detailOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** A publish the client refused or the stream failed, transient unless it can never succeed unchanged. */
const publishFailure = (cause: unknown) =>
  new PublishError({ operation: "publish", detail: detailOf(cause), transient: isOutage(cause) })

/** What the stream answered on a publish's reply subject: its ack, or why it did not store the message. */
const ackOf = (reply: Msg): Either.Either<{ readonly seq: number; readonly duplicate: boolean }, PublishError> => {
  // "no responders": no stream captures the subject, JetStream is not there, or (in a cluster) the stream
  // has no leader while one is elected. Transient: retried until the stream answers
  if (reply.data.length === 0 && reply.headers?.code === 503) {
    return Either.left(
      new PublishError({
        operation: "publish",
        detail: "no responders (503): no stream captures the subject, or its leader is being elected"
      })
    )
  }
  return Either.try({
    try: () => reply.json<PubAckReply>(),
    catch: (cause) => publishFailure(cause)
  }).pipe(
    Either.flatMap((answer) =>
      typeof answer !== "object" || answer === null
        ? Either.left(new PublishError({ operation: "publish", detail: "invalid ack response" }))
        : typeof answer.error === "object" && answer.error !== null
          ? Either.left(
              new PublishError({
                operation: "publish",
                detail: answer.error.description ?? `error ${answer.error.err_code}`,
                transient: answer.error.err_code !== messageExceedsMaximum
              })
            )
          : typeof answer.seq !== "number" || typeof answer.stream !== "string" || answer.stream === ""
            ? Either.left(new PublishError({ operation: "publish", detail: "invalid ack response" }))
            : Either.right({ seq: answer.seq, duplicate: answer.duplicate === true })
    )
  )
}

/** JetStream's answer to a publish (a `PubAck`, or an API error). */
interface PubAckReply {
  readonly stream?: string
  readonly seq?: number
  readonly duplicate?: boolean
  readonly error?: { readonly code?: number; readonly err_code?: number; readonly description?: string }
}

/**
 * Whether a publish the client refused may succeed later unchanged: not when it refused the message itself
 * (larger than the server's max payload, an invalid subject or argument); anything else (a closed
 * connection, an unknown error) is retried. The stream's own refusals are told apart in {@link ackOf}.
 */
const isOutage = (cause: unknown): boolean => {
  if (!(cause instanceof Error)) return true
  return cause.name !== "InvalidArgumentError" && cause.name !== "InvalidSubjectError"
}

/** JetStream's "message size exceeds maximum allowed" (the stream's `max_msg_size`). */
const messageExceedsMaximum = 10054
