/**
 * What the admin endpoints of `EventBrowserApi` for data lifecycle do, apart from HTTP: a stream's soft
 * delete, undelete, hard delete (with its snapshots, when a `SnapshotStore` is provided), truncation and
 * archiving, and the erasure of a data subject (with the `KeyStore` provided to the API's Layer). The store's typed
 * errors become 4xx answers (no such stream 404, a deleted stream 409, bad input 400); only a store that
 * fails is a 500.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Event from "../../Event.js"
import * as EventStore from "../../EventStore.js"
import * as KeyStore from "../../KeyStore.js"
import * as Snapshot from "../../Snapshot.js"
import type * as ConsoleModel from "./consoleModel.js"
import * as Model from "./eventBrowserModel.js"

/** A stream lifecycle operation of the admin endpoints. */
export type StreamAction = (typeof ConsoleModel.StreamAction.Type)["action"]

type LifecycleError = Model.NotFound | Model.StreamConflict | Model.BadRequest | Model.ServiceError

/** The store's errors of a lifecycle operation, as the API's. */
const answer =
  (streamId: string, operation: string) =>
  (
    error:
      | EventStore.StreamNotFound
      | EventStore.StreamDeleted
      | EventStore.ConcurrencyConflict
      | Event.InvalidStreamId
      | EventStore.EventStoreError
  ): LifecycleError => {
    switch (error._tag) {
      case "StreamNotFound":
        return Model.NotFound.of("stream", streamId)
      case "StreamDeleted":
        return new Model.StreamConflict({ streamId, hard: error.hard, message: error.message })
      case "InvalidStreamId":
        return new Model.BadRequest({ message: error.message })
      // no expected version is given: a conflict is a store's surprise, reported as its failure
      case "ConcurrencyConflict":
      case "EventStoreError":
        return Model.ServiceError.of(`EventStore.${operation}`)(error)
    }
  }

/**
 * Runs a lifecycle operation on a stream. A hard delete deletes the stream's snapshots too when a
 * `SnapshotStore` is provided (`snapshots: null` otherwise).
 */
export const streamAction = (
  streamId: Event.StreamId,
  action: StreamAction,
  before?: number
): Effect.Effect<typeof ConsoleModel.StreamAction.Type, LifecycleError, EventStore.EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    switch (action) {
      case "delete":
        yield* Effect.mapError(store.deleteStream(streamId), answer(streamId, "deleteStream"))
        return { streamId, action }
      case "undelete":
        yield* Effect.mapError(store.undeleteStream(streamId), answer(streamId, "undeleteStream"))
        return { streamId, action }
      case "hard-delete": {
        yield* Effect.mapError(store.hardDeleteStream(streamId), answer(streamId, "hardDeleteStream"))
        const snapshots = yield* Effect.serviceOption(Snapshot.SnapshotStore)
        if (Option.isNone(snapshots)) return { streamId, action, snapshots: null }
        const removed = yield* Effect.mapError(
          snapshots.value.deleteStream(streamId),
          Model.ServiceError.of("SnapshotStore.deleteStream")
        )
        return { streamId, action, snapshots: removed }
      }
      case "truncate": {
        const removed = yield* Effect.mapError(
          store.truncateStream(streamId, before ?? 1),
          answer(streamId, "truncateStream")
        )
        return { streamId, action, removed }
      }
      case "archive": {
        const removed = yield* Effect.mapError(
          store.archiveStream(streamId, before === undefined ? {} : { before }),
          answer(streamId, "archiveStream")
        )
        return { streamId, action, removed }
      }
    }
  }).pipe(Effect.withSpan("EventBrowserApi.streamAction", { attributes: { streamId, action } }))

/**
 * Erases a data subject with the `KeyStore` provided to the API (404 without one): its key is deleted,
 * for good. Erasing an erased or unknown subject succeeds (it is recorded as erased).
 */
export const eraseSubject = (
  subject: string
): Effect.Effect<typeof ConsoleModel.SubjectErasure.Type, Model.NotFound | Model.BadRequest | Model.ServiceError> =>
  Effect.gen(function* () {
    const keys = yield* Effect.serviceOption(KeyStore.KeyStore)
    if (Option.isNone(keys)) return yield* Model.NotFound.of("keyStore", "KeyStore")
    yield* keys.value
      .erase(subject)
      .pipe(
        Effect.mapError((error) =>
          error.reason === "InvalidSubject"
            ? new Model.BadRequest({ message: error.message })
            : Model.ServiceError.of("KeyStore.erase")(error)
        )
      )
    return { subject, erased: true as const }
  }).pipe(Effect.withSpan("EventBrowserApi.eraseSubject"))
