/**
 * Group commit: concurrent requests queue up and are handed to `run` in batches, so that many of them
 * share one round trip and one commit.
 *
 * There is no waiting for a batch to fill: a writer takes what is queued the moment it is free, and (with
 * `runOne`) a request arriving while nothing is in flight runs at once in its own fiber, so a lone request
 * is never delayed; with `gather`, it yields once first, and the requests ready beside it join its batch.
 * Requests arriving during a round trip form the next batch; `writers` batches may be in flight at a time.
 *
 * A request whose caller is interrupted while it waits in the queue still runs (its answer is dropped);
 * once the scope closes, requests fail with `closed`.
 *
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

export interface BatcherOptions<I, O, E> {
  /** Most requests per batch. */
  readonly maxBatch: number
  /** Batches in flight at a time. */
  readonly writers: number
  /** Runs a batch: one exit per request, in order. A failure of the whole batch fails each request with it. */
  readonly run: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<Exit.Exit<O, E>>, E>
  /**
   * Runs a lone request in its caller's fiber (the same work as a batch of one, without its exits). Without
   * it every request goes through the queue: where the work is synchronous (SQLite's driver), a request
   * run at once would run to its end before the callers ready beside it could queue, and every group
   * would be one request.
   */
  readonly runOne?: (item: I) => Effect.Effect<O, E>
  /**
   * Whether a request arriving while nothing is in flight gathers: it yields once, so that the requests
   * ready beside it join it, then runs them (itself first) in its caller's fiber, as the writer would, in
   * batches of at most `maxBatch`. For a synchronous driver (SQLite's), where `runOne` would make every group
   * one request long; handed to the writer fiber instead, a lone one-event SQLite append took about a fifth
   * longer (measured). Needs `writers: 1`: the writer takes nothing while a caller gathers, since the
   * requests arriving meanwhile join it rather than queue.
   */
  readonly gather?: boolean
  /** The size of a request, for `maxWeight`; default none (batches are bounded by count only). */
  readonly weight?: (item: I) => number
  /** Most total `weight` per batch: what was taken runs as consecutive batches within it (a heavier request alone). */
  readonly maxWeight?: number
  /** The failure of requests still queued when the scope closes. */
  readonly closed: () => E
}

interface Pending<I, O, E> {
  readonly item: I
  /**
   * Answers the request: resumes its caller, unless the caller stopped waiting. A callback rather than a
   * `Deferred`: making one per request cost about 5% of a grouped SQLite append.
   */
  readonly answer: (exit: Exit.Exit<O, E>) => void
}

/** Starts the writers in the current scope; returns the function that submits one request. */
export const make = <I, O, E>(
  options: BatcherOptions<I, O, E>
): Effect.Effect<(item: I) => Effect.Effect<O, E>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Pending<I, O, E>>()
    let inFlight = 0
    let queued = 0
    let closed = false
    // called synchronously where a batch is taken, so that `inFlight` and `queued` never both read 0 meanwhile;
    // `run` may throw while it builds its effect: that is a defect of the batch, not of the writer
    const runBatch = (items: ReadonlyArray<I>) => {
      inFlight++
      return Effect.suspend(() => options.run(items)).pipe(
        Effect.catchAll((error) => Effect.succeed(items.map(() => Exit.fail(error)))),
        Effect.catchAllDefect((defect) => Effect.succeed(items.map(() => Exit.die(defect)))),
        Effect.ensuring(Effect.sync(() => inFlight--))
      )
    }
    /**
     * Runs `taken` in batches (at most `maxBatch` each, within `maxWeight`), answering each request. Taken from
     * the queue, a batch is counted out of `queued` as it starts: taken and not running yet, it still counts.
     */
    const runTaken = (taken: ReadonlyArray<Pending<I, O, E>>, fromQueue: boolean) =>
      Effect.forEach(
        chunks(taken, options.maxBatch).flatMap((chunk) => byWeight(chunk, options)),
        (batch) =>
          Effect.suspend(() => {
            if (fromQueue) queued -= batch.length
            return Effect.flatMap(runBatch(batch.map((p) => p.item)), (exits) =>
              Effect.sync(() => batch.forEach((p, i) => p.answer(exits[i] ?? missing)))
            )
          }),
        { discard: true }
      )
    // waiting for work is interruptible; a batch once taken is run and answered to the end
    const write = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(restore(Queue.take(queue)), (first) =>
        Effect.flatMap(Queue.takeUpTo(queue, options.maxBatch - 1), (rest) => runTaken([first, ...rest], true))
      )
    )
    // the requests that joined a gathering caller (see `gather`), while one gathers
    let gathering: Array<Pending<I, O, E>> | undefined
    // completed when a gathering caller is done, if the scope is closing meanwhile
    let gathered: Deferred.Deferred<void> | undefined
    /**
     * Gathers (see `gather`): uninterruptible from the moment others may join, since it runs their requests
     * too. Idle no more by the time it starts (a fiber switch in between), it submits the request anew.
     */
    const gather = (item: I): Effect.Effect<O, E> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          if (gathering !== undefined || inFlight > 0 || queued > 0 || closed) return restore(submit(item))
          gathering = []
          return Effect.zipRight(
            Effect.yieldNow(),
            Effect.suspend(() => runGathered(item, gathering!.splice(0)))
          ).pipe(Effect.ensuring(Effect.sync(endGathering)))
        })
      )
    /** The gathering caller's request and those that joined it, in batches; its own exit. */
    const runGathered = (item: I, joined: ReadonlyArray<Pending<I, O, E>>): Effect.Effect<O, E> => {
      if (closed) {
        joined.forEach((p) => p.answer(Exit.fail(options.closed())))
        return Effect.fail(options.closed())
      }
      // alone: the batch of one, without the bookkeeping of several
      if (joined.length === 0) return Effect.flatMap(runBatch([item]), (exits) => exits[0] ?? missing)
      let own: Exit.Exit<O, E> = missing
      return Effect.zipRight(
        runTaken([{ item, answer: (exit) => (own = exit) }, ...joined], false),
        Effect.suspend(() => own)
      )
    }
    /** Ends a gathering: those that joined while its batches waited on something go to the writer. */
    const endGathering = () => {
      const late = gathering!
      gathering = undefined
      for (const p of late) {
        if (closed) p.answer(Exit.fail(options.closed()))
        else {
          queued++
          queue.unsafeOffer(p)
        }
      }
      if (gathered !== undefined) Deferred.unsafeDone(gathered, Exit.void)
    }
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        // from now on a request fails at once: none can reach the queue after it is emptied
        closed = true
        const drained = Effect.flatMap(Queue.takeAll(queue), (pending) =>
          Effect.sync(() => Chunk.forEach(pending, (p) => p.answer(Exit.fail(options.closed()))))
        ).pipe(Effect.zipRight(Queue.shutdown(queue)))
        if (gathering === undefined) return drained
        // a caller gathering runs on the connection: wait for it to end
        gathered = Deferred.unsafeMake<void>(FiberId.none)
        return Effect.zipRight(Deferred.await(gathered), drained)
      })
    )
    for (let i = 0; i < options.writers; i++) yield* Effect.forkScoped(Effect.forever(write))
    const submit = (item: I): Effect.Effect<O, E> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(options.closed())
        if (gathering !== undefined) {
          return Effect.async<O, E>((resume) => {
            // checked again where it joins: the caller gathering may have ended in between
            if (gathering !== undefined) gathering.push({ item, answer: resume })
            else resume(submit(item))
          })
        }
        if (options.gather === true && inFlight === 0 && queued === 0) return gather(item)
        const runOne = options.runOne
        if (runOne !== undefined && inFlight === 0 && queued === 0) {
          inFlight++
          return Effect.ensuring(
            Effect.suspend(() => runOne(item)),
            Effect.sync(() => inFlight--)
          )
        }
        return Effect.async<O, E>((resume) => {
          // checked, counted and queued in one synchronous step: no close can come in between
          if (closed) return resume(Effect.fail(options.closed()))
          queued++
          queue.unsafeOffer({ item, answer: resume })
        })
      })
    return submit
  })

const missing = Exit.die("missing batch result")

/** `items` cut into consecutive chunks of at most `size`. */
const chunks = <T>(items: ReadonlyArray<T>, size: number): ReadonlyArray<ReadonlyArray<T>> => {
  const out: Array<ReadonlyArray<T>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** Consecutive batches of `taken`, each within `maxWeight` (or one request, if that alone is heavier). */
const byWeight = <T extends { readonly item: I }, I>(
  taken: ReadonlyArray<T>,
  options: { readonly weight?: (item: I) => number; readonly maxWeight?: number }
): ReadonlyArray<ReadonlyArray<T>> => {
  const { maxWeight, weight } = options
  if (weight === undefined || maxWeight === undefined) return [taken]
  const batches: Array<Array<T>> = []
  let current: Array<T> = []
  let total = 0
  for (const pending of taken) {
    const w = weight(pending.item)
    if (current.length > 0 && total + w > maxWeight) {
      batches.push(current)
      current = []
      total = 0
    }
    current.push(pending)
    total += w
  }
  if (current.length > 0) batches.push(current)
  return batches
}
