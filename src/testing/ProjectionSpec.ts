/**
 * Given/then specifications of projections: `given` domain events (appended to a fresh in-memory store,
 * each to the stream you name or to one default stream), the projection catches up, `then` an assertion
 * on the read model runs (or `thenHalts` expects a poison event to stop it). How it differs from
 * production, and an example: {@link make}.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as CheckpointStore from "../CheckpointStore.js"
import * as Event from "../Event.js"
import * as EventStore from "../EventStore.js"
import * as KeyStore from "../KeyStore.js"
import * as MemoryEventStore from "../MemoryEventStore.js"
import * as Projection from "../Projection.js"

/** The projection did not behave as specified. */
export class ProjectionSpecFailure extends Schema.TaggedError<ProjectionSpecFailure>()("ProjectionSpecFailure", {
  description: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** A given event: a domain event for the default stream, or one for a named stream (with metadata). */
export type GivenEvent<A> = A | NamedEvent<A>

/** A given event for a named stream. */
export interface NamedEvent<A> {
  readonly streamId: string
  readonly event: A
  readonly metadata?: Event.Metadata | undefined
}

/** A specification in progress. */
export interface Spec<A, R> {
  readonly given: (events: ReadonlyArray<GivenEvent<A>>) => Given<R>
}

export interface Given<R> {
  /** After catching up with the given events, `assertion` holds (it reads the read model). */
  readonly then: <E2, R2>(
    assertion: Effect.Effect<void, E2, R2>
  ) => Effect.Effect<
    void,
    E2 | ProjectionSpecFailure,
    Exclude<R | R2, EventStore.EventStore | CheckpointStore.CheckpointStore>
  >
  /** Catching up stops at a poison event whose error contains `errorIncludes` (policy `stop`). */
  readonly thenHalts: (
    errorIncludes?: string
  ) => Effect.Effect<void, ProjectionSpecFailure, Exclude<R, EventStore.EventStore | CheckpointStore.CheckpointStore>>
}

/**
 * Starts a specification. Given events without a stream go to `<category>-1`, where the category is the
 * projection's first one (or `Spec`).
 *
 * The projection runs as in production (codec, filters, handlers, poison policy) on memory stores, with
 * two differences: batches of one event, since memory stores cannot roll a failed batch's effects back
 * (a retried batch would apply its first events again), and retries without waits. The read model is
 * whatever the handler writes to: provide its services (a `Ref`-backed service, or an SQLite
 * `SqlClient`) to the returned Effect, fresh per specification.
 *
 * ```ts
 * it.effect("deposits add up", () =>
 *   ProjectionSpec.make(Balances)
 *     .given([{ streamId: "Account-1", event: deposited(10) }, { streamId: "Account-1", event: deposited(5) }])
 *     .then(Effect.flatMap(BalanceTable, (t) => t.expect("Account-1", 15))))
 * ```
 */
export const make = <A, E, R>(projection: Projection.Projection<A, E, R>): Spec<A, R> => ({
  given: (events) => {
    const defaultStream = `${projection.categories?.[0] ?? "Spec"}-1`
    const catchUp = Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      for (const given of events) {
        const { event, metadata, streamId } = isNamed(given)
          ? given
          : { streamId: defaultStream, event: given as A, metadata: undefined }
        const encoded = yield* projection.codec.encode(event)
        const data = yield* Event.make({ ...encoded, ...(metadata === undefined ? {} : { metadata }) })
        yield* store.append(streamId, [data])
      }
      // the handler's retries keep their count but not their waits: specifications run on any clock
      return yield* Projection.catchUp({
        ...projection,
        batchSize: 1,
        retry: Schedule.modifyDelay(projection.retry, () => Duration.zero)
      })
    })
    const stores = Layer.merge(MemoryEventStore.layer(), CheckpointStore.layerMemory)
    /** Personal fields need a key store: the one provided, else a memory one per specification. */
    const withKeys = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) =>
      projection.codec.personal
        ? Effect.flatMap(Effect.serviceOption(KeyStore.KeyStore), (keys) =>
            Option.isSome(keys) ? effect : Effect.provide(effect, KeyStore.layerMemory)
          )
        : effect
    return {
      then: (assertion) =>
        Effect.zipRight(
          catchUp.pipe(
            Effect.mapError((cause) => new ProjectionSpecFailure({ description: "catching up failed", cause }))
          ),
          assertion
        ).pipe(Effect.provide(stores), withKeys),
      thenHalts: (errorIncludes) =>
        catchUp.pipe(
          Effect.flatMap(() =>
            Effect.fail(new ProjectionSpecFailure({ description: "expected the projection to halt; it caught up" }))
          ),
          Effect.catchAll((error) =>
            error._tag === "ProjectionHalted" && (errorIncludes === undefined || error.error.includes(errorIncludes))
              ? Effect.void
              : Effect.fail(
                  error._tag === "ProjectionSpecFailure"
                    ? error
                    : new ProjectionSpecFailure({
                        description: `expected a halt on an error containing ${JSON.stringify(errorIncludes)}`,
                        cause: error
                      })
                )
          ),
          Effect.provide(stores),
          withKeys
        )
    }
  }
})

/** Domain events are tagged values, so a `streamId` + `event` pair is never one. */
const isNamed = <A>(given: GivenEvent<A>): given is NamedEvent<A> =>
  typeof given === "object" && given !== null && "streamId" in given && "event" in given
