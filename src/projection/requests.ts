/**
 * Operators' requests carried out by a projection's running workers (see `CheckpointStore.requestRebuild`
 * and `CheckpointStore.retryDeadLetter`): only a worker has the projection's handlers and `truncate` hook,
 * so an operator (the command-line tool, connected to the database only) leaves a request in the
 * checkpoint store, and the runner looks for requests beside its supervisor, at the same pace. A request
 * is taken in the transaction that carries it out, so it is carried out once however many workers see it,
 * and stays pending when that transaction fails.
 */
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as CheckpointStore from "../CheckpointStore.js"
import { isPassing, type Runtime, untilDone } from "./batch.js"

/**
 * Carries out the pending requests of the runner's projection version: a rebuild, then the retries of the
 * dead letters of the partitions this worker owns (`owns`). Failures are logged; the requests they left
 * pending are tried again at the next call.
 */
export const handleRequests = <A, E, R>(
  rt: Runtime<A, E, R>,
  owns: (partition: number) => boolean
): Effect.Effect<void, never, R> =>
  Effect.gen(function* () {
    const partitions = yield* rt.checkpoints.partitions(rt.id)
    if (partitions.some((p) => p.pendingRebuild)) yield* rebuild(rt)
    // read after the rebuild, which drops the version's dead letters
    for (const letter of yield* rt.checkpoints.retriesRequested(rt.id)) {
      if (owns(letter.partition)) yield* retry(rt, letter)
    }
  }).pipe(
    Effect.catchAllCause((cause) =>
      Effect.logWarning("could not carry out the operators' requests; trying again later", cause)
    )
  )

/**
 * `Projection.rebuild` on request: takes the request, runs the `truncate` hook and resets the checkpoints,
 * in one transaction. The partitions start over when their runners notice the reset (their next supervisor
 * step or commit).
 */
const rebuild = <A, E, R>(rt: Runtime<A, E, R>) =>
  rt.checkpoints
    .transaction(
      Effect.gen(function* () {
        if (!(yield* rt.checkpoints.takeRebuild(rt.id))) return false
        yield* rt.def.truncate ?? Effect.void
        yield* rt.checkpoints.reset(rt.id)
        return true
      })
    )
    .pipe(
      Effect.flatMap((done) =>
        done ? Effect.logInfo("rebuilt on request: the partitions start over from the start of the log") : Effect.void
      ),
      Effect.catchAllCause((cause) =>
        Effect.logError("a requested rebuild failed; it stays pending and is tried again", cause)
      )
    )

/** The letter was taken by another worker, or discarded, meanwhile. */
class NotTaken {
  readonly _tag = "NotTaken"
}

/** The handler failed on the event. */
class HandlerFailed {
  readonly _tag = "HandlerFailed"
  constructor(readonly cause: Cause.Cause<unknown>) {}
}

/**
 * A dead letter's event handled again: the handler's work and the letter's removal in one transaction (at
 * least once for a non-transactional definition, whose handler runs before the removal), with the
 * definition's retry schedule. Failing for good, the letter stays, with the new error and time.
 */
const retry = <A, E, R>(rt: Runtime<A, E, R>, letter: CheckpointStore.DeadLetter) =>
  Effect.gen(function* () {
    const name = rt.id.name
    const [opened] = yield* untilDone(rt.def.codec.open([letter.event]))
    const decoded = rt.def.codec.decodeEither(opened!)
    if (Either.isLeft(decoded)) return yield* failedAgain(rt, letter, decoded.left.message)
    const handle = rt.def
      .handleBatch(decoded.right.map((event) => ({ event, envelope: letter.event })))
      .pipe(
        Effect.catchAllCause((cause): Effect.Effect<never, HandlerFailed> =>
          Cause.isInterruptedOnly(cause)
            ? Effect.failCause(cause as Cause.Cause<never>)
            : Effect.fail(new HandlerFailed(cause))
        )
      )
    const take = Effect.flatMap(rt.checkpoints.takeRetry(name, letter.id), (taken) =>
      taken ? Effect.void : Effect.fail(new NotTaken())
    )
    const attempt =
      rt.def.transactional === false
        ? Effect.zipRight(handle, take)
        : rt.checkpoints.transaction(Effect.zipRight(handle, take))
    const exit = yield* Effect.exit(
      Effect.retry(attempt, {
        schedule: rt.def.retry,
        while: (error) => error._tag === "HandlerFailed" && !isPassing(error.cause, rt.checkpoints)
      })
    )
    if (Exit.isSuccess(exit)) return yield* Effect.logInfo(`dead letter ${letter.id} handled on request`)
    const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
    if (error?._tag === "NotTaken") return
    if (error?._tag === "HandlerFailed" && !isPassing(error.cause, rt.checkpoints)) {
      return yield* failedAgain(rt, letter, Cause.pretty(error.cause))
    }
    // the store or the handler's infrastructure is unavailable: the retry stays asked
    yield* Effect.logWarning(`the retry of dead letter ${letter.id} could not run; it is tried again`, exit.cause)
  }).pipe(Effect.annotateLogs({ deadLetter: letter.id, partition: letter.partition }))

const failedAgain = <A, E, R>(rt: Runtime<A, E, R>, letter: CheckpointStore.DeadLetter, error: string) =>
  Effect.gen(function* () {
    yield* Effect.logError(`dead letter ${letter.id} failed again on request: ${error}`)
    yield* rt.checkpoints.retryFailed(rt.id.name, letter.id, error, yield* DateTime.now)
  })
