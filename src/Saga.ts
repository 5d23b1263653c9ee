/**
 * Sagas (process managers): long-running processes that react to events by sending commands, with
 * persisted state, compensation and durable timeouts.
 *
 * A saga is a pure definition ({@link make}): `correlate` maps an event to the saga instance it belongs
 * to, and `react(state, input)` returns the next state, the commands to send (each step may record its
 * compensating command), timeouts to schedule or cancel, and whether the instance completed or failed.
 * {@link run} / {@link layer} run it on the projection runner (checkpointed, partitioned) with a
 * scheduler fiber firing due timeouts: each event affects an instance once, command ids are deterministic,
 * compensations run newest first, timeouts survive restarts (the guarantees and Gotchas: {@link run}).
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as CheckpointStore from "./CheckpointStore.js"
import * as CommandBus from "./CommandBus.js"
import * as Event from "./Event.js"
import type * as EventStore from "./EventStore.js"
import * as Traceparent from "./internal/traceparent.js"
import * as Uuid from "./internal/uuid.js"
import type * as KeyStore from "./KeyStore.js"
import * as Metrics from "./Metrics.js"
import * as Personal from "./Personal.js"
import * as Projection from "./Projection.js"
import * as SagaStore from "./SagaStore.js"
import type * as Upcaster from "./Upcaster.js"

/** A due timeout, as `react` receives it. */
export class Timeout extends Schema.TaggedClass<Timeout>()("SagaTimeout", { name: Schema.String }) {}

/** A command to send, with the command that undoes it should the saga fail later. */
export interface Step<C> {
  readonly command: C
  readonly compensation?: C
}

/** What a saga does in response to an input. */
export interface Reaction<S, C> {
  readonly state: S
  /** Sent in order; a failing one stops the rest and fails the instance. */
  readonly commands?: ReadonlyArray<C | Step<C>>
  readonly schedule?: ReadonlyArray<{ readonly name: string; readonly after: Duration.DurationInput }>
  readonly cancel?: ReadonlyArray<string>
  /** The instance is done: its pending timeouts are cancelled, later inputs ignored. */
  readonly complete?: boolean
  /** Give up with this reason: compensate what was done (this reaction's `commands` are not sent). */
  readonly fail?: string
}

/** Options of {@link make}. */
export interface Options<A extends { readonly _tag: string }, I, S, SI, C extends CommandBus.Command> {
  readonly name: string
  /** The events the saga reacts to (other types are not read): their Schema, or a codec already built. */
  readonly events: Schema.Schema<A, I> | Upcaster.EventCodec<A>
  readonly versions?: Upcaster.CodecOptions<A, I>["versions"]
  readonly upcasters?: ReadonlyArray<Upcaster.Upcaster>
  readonly categories?: ReadonlyArray<string>
  /** The instance an event belongs to, or `undefined` for none. */
  readonly correlate: (event: A, envelope: Event.RecordedEvent) => string | undefined
  readonly state: Schema.Schema<S, SI>
  readonly initialState: S
  /** The command classes the saga sends (and compensates with). */
  readonly commands: ReadonlyArray<CommandBus.CommandClass>
  /** Pure. */
  readonly react: (state: S, input: A | Timeout) => Reaction<S, C>
  readonly partitions?: number
  /**
   * Events per batch; default 20. A batch is one transaction that stays open while its commands are
   * sent, holding the read horizon and the instances' locks: keep it small.
   */
  readonly batchSize?: number
  /** What to do with an event whose reaction keeps failing; default `stop` (see `Projection`). */
  readonly onPoison?: Projection.PoisonPolicy
  /** Retries of a failing reaction before its event is poison (see `Projection`). */
  readonly retry?: Schedule.Schedule<unknown, unknown>
}

/** A saga definition; see {@link make}. */
export interface Saga<A, S, C> {
  readonly name: string
  readonly projection: Projection.Projection<A, never, SagaStore.SagaStore | CommandBus.CommandBus>
  readonly react: (state: S, input: A | Timeout) => Reaction<S, C>
  readonly initialState: S
  readonly stateSchema: Schema.Schema<S, any>
  /**
   * Applies one input to an instance under its lock: react, send, save (see the module doc). A timeout
   * input names the stored timeout it fires, which must still be pending (it is claimed first).
   */
  readonly apply: (
    instance: string,
    input: A | Timeout,
    cause: string,
    timeout?: SagaStore.Timeout
  ) => Effect.Effect<void, SagaStore.SagaStoreError, SagaStore.SagaStore | CommandBus.CommandBus>
}

/** Defines a saga. Throws on an invalid definition (as `Projection.make` does). */
export const make = <A extends { readonly _tag: string }, I, S, SI, C extends CommandBus.Command>(
  options: Options<A, I, S, SI, C>
): Saga<A, S, C> => {
  const commandClasses = new Map(options.commands.map((c) => [c._tag, c]))
  const encodeState = Schema.encode(options.state)
  const decodeState = Schema.decodeUnknown(options.state)
  const encodeCommand = (command: CommandBus.Command) =>
    Effect.orDie(Schema.encode(commandClass(command))(command)) as Effect.Effect<SagaStore.StoredCommand>
  /** The stored state with its personal fields opened (see `Personal`). */
  const openState = (state: unknown) => Effect.mapError(Personal.openOne(state), keyStoreFailure("open state"))
  const commandClass = (command: { readonly _tag: string }) => {
    const c = commandClasses.get(command._tag)
    if (c === undefined) throw new Error(`saga ${options.name} sends ${command._tag}, which is not in its commands`)
    return c as CommandBus.CommandClass
  }

  const started = Metric.tagged(Metric.tagged(Metrics.sagaInstancesTotal, "saga", options.name), "status", "started")
  const ended = (status: SagaStore.Status) =>
    Metric.tagged(Metric.tagged(Metrics.sagaInstancesTotal, "saga", options.name), "status", status)

  /** {@link Saga.apply}, its span linked to the span that appended the triggering event, if any. */
  const applyWith = (
    instance: string,
    input: A | Timeout,
    cause: string,
    timeout: SagaStore.Timeout | undefined,
    trigger: Event.RecordedEvent | undefined
  ): Effect.Effect<void, SagaStore.SagaStoreError, SagaStore.SagaStore | CommandBus.CommandBus> =>
    Effect.gen(function* () {
      const store = yield* SagaStore.SagaStore
      const bus = yield* CommandBus.CommandBus
      // the instance first, then its timeout: the order every input takes its locks in
      yield* store.lock(options.name, instance)
      if (timeout !== undefined && Option.isNone(yield* store.claim(timeout))) return
      /** Sends a command (and its encoded form) outside the store's transaction, under a deterministic command id. */
      const send = (command: CommandBus.Command, encoded: SagaStore.StoredCommand, slot: string) =>
        Effect.gen(function* () {
          const commandId = Uuid.fromName(
            `${options.name}\u0000${instance}\u0000${cause}\u0000${slot}\u0000${JSON.stringify(encoded)}`
          )
          // the runner's context (its tenant, say) goes with the command, under the saga's own ids
          const context = yield* Event.CommandContext
          return yield* store.outside(
            Effect.exit(
              bus.dispatch(command).pipe(
                Event.withCommandContext({
                  ...context,
                  commandId,
                  correlationId: `${options.name}:${instance}`,
                  causationId: cause
                })
              )
            )
          )
        })
      // a conflicting save (a concurrent input of this instance) is reacted again on the newer state
      for (let attempt = 0; ; attempt++) {
        const loaded = yield* store.load(options.name, instance)
        if (Option.isSome(loaded) && loaded.value.status !== "running") return
        // an input that failed for good in an earlier try whose batch did not commit fails the same way (see
        // `SagaStore.recordFailure`): its steps are not sent again, its compensations run (deduplicated)
        const failedBefore = yield* store.failureOf(options.name, instance, cause)
        const state = Option.isSome(loaded)
          ? yield* Effect.orDie(decodeState(yield* openState(loaded.value.state)))
          : options.initialState
        const reaction = options.react(state, input)
        // everything is encoded before the first command is sent: a state, command or compensation that
        // cannot be makes the input poison with nothing sent, not sent commands whose undoing is not kept
        const encodedState = yield* Effect.flatMap(Effect.orDie(encodeState(reaction.state)), (encoded) =>
          Effect.mapError(Personal.sealState(options.state, encoded), keyStoreFailure("seal state"))
        )
        const steps = yield* Effect.forEach(reaction.commands ?? [], (item) => {
          const step: Step<CommandBus.Command> = isStep(item) ? item : { command: item as CommandBus.Command }
          return Effect.all({
            command: Effect.succeed(step.command),
            encoded: encodeCommand(step.command),
            compensation: step.compensation === undefined ? Effect.succeed(undefined) : encodeCommand(step.compensation)
          })
        })
        const compensations = Option.isSome(failedBefore)
          ? [...failedBefore.value.compensations]
          : [...(Option.isSome(loaded) ? loaded.value.compensations : [])]
        let failure = Option.isSome(failedBefore) ? failedBefore.value.error : reaction.fail
        for (const [index, step] of steps.entries()) {
          if (failure !== undefined) break
          const exit = yield* settled(yield* send(step.command, step.encoded, String(index)))
          if (Exit.isFailure(exit)) failure = `${step.command._tag} failed: ${describe(exit)}`
          else if (step.compensation !== undefined) compensations.push(step.compensation)
        }
        let status: SagaStore.Status = reaction.complete === true ? "completed" : "running"
        let error = Option.none<string>()
        if (failure !== undefined) {
          status = "compensated"
          error = Option.some(failure)
          // committed before any compensation is: from here on, this input fails whatever happens to its batch
          if (Option.isNone(failedBefore) && compensations.length > 0) {
            yield* store.recordFailure(options.name, instance, cause, { error: failure, compensations })
          }
          // newest first; a compensation that fails ends the instance `failed`, keeping the ones not run
          while (compensations.length > 0) {
            const stored = compensations[compensations.length - 1]!
            const command = yield* Effect.orDie(Schema.decodeUnknown(commandClass(stored))(stored))
            const exit = yield* settled(
              yield* send(
                command as CommandBus.Command,
                yield* encodeCommand(command as CommandBus.Command),
                `compensate/${compensations.length}`
              )
            )
            if (Exit.isFailure(exit)) {
              status = "failed"
              error = Option.some(`${failure}; compensation ${command._tag} failed: ${describe(exit)}`)
              break
            }
            compensations.pop()
          }
        }
        const now = yield* Clock.currentTimeMillis
        const pending = status === "running" ? [] : (yield* store.timeouts(options.name, instance)).map((t) => t.name)
        const fired = input instanceof Timeout ? [input.name] : []
        const saved = yield* Effect.either(
          store.save(
            options.name,
            instance,
            Option.isSome(loaded) ? loaded.value.version : 0,
            { status, state: encodedState, compensations, error },
            {
              schedule:
                status === "running"
                  ? (reaction.schedule ?? []).map((t) => ({ name: t.name, dueAt: now + Duration.toMillis(t.after) }))
                  : [],
              cancel: [...(reaction.cancel ?? []), ...fired, ...pending]
            }
          )
        )
        if (saved._tag === "Right") {
          // transitions, counted once saved (see `Metrics.sagaInstancesTotal`)
          if (Option.isNone(loaded)) yield* Metric.increment(started)
          if (status !== "running") yield* Metric.increment(ended(status))
          return
        }
        if (saved.left._tag === "SagaStoreError" || attempt >= 10) return yield* Effect.fail(saved.left)
      }
    }).pipe(
      Effect.scoped,
      Effect.catchTag("SagaConflict", (conflict) =>
        Effect.fail(new SagaStore.SagaStoreError({ operation: "save", cause: conflict }))
      ),
      Effect.withSpan("Saga.react", {
        attributes: { saga: options.name, instance, cause },
        links: trigger === undefined ? [] : Traceparent.linksOf([trigger]),
        captureStackTrace: false
      })
    )

  const apply: Saga<A, S, C>["apply"] = (instance, input, cause, timeout) =>
    applyWith(instance, input, cause, timeout, undefined)

  const projection = Projection.make({
    name: `saga:${options.name}`,
    events: options.events,
    ...(options.versions === undefined ? {} : { versions: options.versions }),
    ...(options.upcasters === undefined ? {} : { upcasters: options.upcasters }),
    ...(options.categories === undefined ? {} : { categories: options.categories }),
    ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
    batchSize: options.batchSize ?? 20,
    ...(options.onPoison === undefined ? {} : { onPoison: options.onPoison }),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    handle: (event, envelope) => {
      const instance = options.correlate(event, envelope)
      return instance === undefined ? Effect.void : applyWith(instance, event, envelope.eventId, undefined, envelope)
    }
  })
  return {
    name: options.name,
    projection: projection as Saga<A, S, C>["projection"],
    react: options.react,
    initialState: options.initialState,
    stateSchema: options.state,
    apply
  }
}

/**
 * Bus errors that leave a command's outcome unknown (it may still complete): not a failure to
 * compensate, but a reason to try the whole input again later, with the same command ids.
 */
const unsettled = new Set([
  "CommandUnavailable",
  "CommandTimeout",
  "CommandTransportError",
  "BusOverloaded",
  "CommandCancelled"
])

/** The command's exit, or a store error (retried by the runner) when its outcome is unknown. */
const settled = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) &&
  exit.cause._tag === "Fail" &&
  unsettled.has(String((exit.cause.error as { readonly _tag?: unknown })?._tag))
    ? Effect.fail(new SagaStore.SagaStoreError({ operation: "send", cause: exit.cause.error }))
    : Effect.succeed(exit)

const isStep = (item: unknown): item is Step<CommandBus.Command> =>
  typeof item === "object" && item !== null && "command" in item && !("_tag" in item)

const describe = (exit: Exit.Exit<unknown, unknown>): string =>
  Exit.isFailure(exit)
    ? Option.match(Option.fromNullable(exit.cause._tag === "Fail" ? exit.cause.error : undefined), {
        onNone: () => "it died",
        onSome: (error) =>
          typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : String(error)
      })
    : "ok"

/** Options of {@link run}. */
export interface RunOptions extends Projection.RunOptions {
  /** How often due timeouts are looked for; default 1 second. */
  readonly timeoutPoll?: Duration.DurationInput
}

/**
 * Runs the saga until interrupted: its projection (reacting to events) and its timeout scheduler
 * (delivering due timeouts; several processes may run it, each timeout is claimed by one).
 *
 * Guarantees:
 * - **Each event affects an instance once**: the instance's new state and the checkpoint past the event
 *   commit together (on the memory stores, a failed batch's saves are undone), and saves are versioned.
 * - **Deterministic command ids**: a command's id derives from the saga, the instance, the triggering
 *   event (or timeout), the command's index and content; a replay after a crash (commands sent, state
 *   not saved) sends the same ids, which the receiving aggregates dedupe.
 * - **Compensation**: when a command fails (its domain error, or a refusal such as validation) or a
 *   reaction gives up (`fail`), the compensations recorded so far are sent newest first; the instance
 *   ends `compensated`, or `failed` if a compensation fails too (keeping those not run). A command whose
 *   outcome is unknown (unavailable, timed out, not delivered) is not a failure: the input is tried
 *   again later, with the same command ids.
 * - **Durable timeouts**: stored with the instance's save, delivered as a {@link Timeout} input once due
 *   (after restarts too), cancelled by a reaction or when the instance ends.
 * - **One input at a time per instance**: every input (event or timeout) is applied under the instance's
 *   lock (a row lock held to the transaction's end on PostgreSQL), so each reacts to what the previous
 *   one saved, across partitions and processes.
 *
 * Observability: each input is a `Saga.react` span (linked to the span that appended the triggering
 * event, from its `traceparent` metadata), and instances entering a status are counted in
 * `eventsourcing_saga_instances_total{saga,status}` (see `Metrics`).
 *
 * **Gotchas**: commands are sent before the state is saved and the batch commits (a replay re-sends
 * them under the same ids, see above), and the batch's transaction stays open meanwhile: keep batches
 * small (the default is 20). Two batches locking the same instances in opposite orders deadlock on
 * PostgreSQL; the database aborts one, which is retried. On SQLite the commands join the saga's
 * transaction. Commands go through the `CommandBus` in context. On PostgreSQL and MySQL each batch holds
 * a connection while its commands take others: give the pool more connections than the saga's partitions
 * (plus what else shares it), or the batches wait on the pool for each other. A timeout fires at its due
 * time by the clock, even while events recorded before it still wait in the saga's backlog (after a
 * downtime, say): a deadline racing a late confirmation is decided by which the saga sees first.
 * The memory saga store keeps an instance's lock for one input, not to the end of its batch: with
 * several partitions, an instance that receives events in two partitions at once is only safe on SQL.
 */
export const run = <A, S, C>(
  saga: Saga<A, S, C>,
  options?: RunOptions
): Effect.Effect<
  never,
  CheckpointStore.PartitionCountMismatch,
  EventStore.EventStore | CheckpointStore.CheckpointStore | SagaStore.SagaStore | CommandBus.CommandBus
> =>
  Effect.zipRight(
    Effect.forkScoped(fireTimeouts(saga, options?.timeoutPoll ?? "1 second")),
    Projection.run(saga.projection, options)
  ).pipe(Effect.scoped)

/** {@link run} forked in the Layer's scope. */
export const layer = <A, S, C>(
  saga: Saga<A, S, C>,
  options?: RunOptions
): Layer.Layer<
  never,
  never,
  EventStore.EventStore | CheckpointStore.CheckpointStore | SagaStore.SagaStore | CommandBus.CommandBus
> =>
  Layer.scopedDiscard(
    Effect.forkScoped(
      run(saga, options).pipe(Effect.catchAll((error) => Effect.logError(`saga ${saga.name} stopped`, error)))
    )
  )

/**
 * The scheduler: applies due timeouts, each in a transaction of its own holding the instance's lock
 * and the timeout's claim; one that fails is logged and tried again at the next poll.
 */
const fireTimeouts = <A, S, C>(saga: Saga<A, S, C>, poll: Duration.DurationInput) =>
  Effect.gen(function* () {
    const store = yield* SagaStore.SagaStore
    const fire = (t: SagaStore.Timeout) =>
      store
        .transaction(saga.apply(t.instance, new Timeout({ name: t.name }), `timeout:${t.name}:${t.dueAt}`, t))
        .pipe(
          Effect.catchAllCause((cause) =>
            Effect.logWarning(`saga ${saga.name} timeout ${t.name} of ${t.instance}`, cause)
          )
        )
    yield* Effect.flatMap(store.due(saga.name, 100), (due) => Effect.forEach(due, fire, { discard: true })).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning(`saga ${saga.name} timeouts`, cause)),
      Effect.repeat(Schedule.spaced(poll))
    )
  }).pipe(Effect.annotateLogs({ saga: saga.name }))

/** An instance, as the HTTP API shows it. */
export interface InstanceStatus<S> {
  readonly status: SagaStore.Status
  readonly state: S
  readonly version: number
  /** Compensations recorded and not yet run. */
  readonly compensations: number
  readonly pendingTimeouts: ReadonlyArray<{ readonly name: string; readonly dueAt: number }>
  readonly error: Option.Option<string>
}

/** The instance's status, if it exists. */
export const instance = <A, S, C>(
  saga: Saga<A, S, C>,
  id: string
): Effect.Effect<Option.Option<InstanceStatus<S>>, SagaStore.SagaStoreError, SagaStore.SagaStore> =>
  Effect.gen(function* () {
    const store = yield* SagaStore.SagaStore
    const loaded = yield* store.load(saga.name, id)
    if (Option.isNone(loaded)) return Option.none()
    const opened = yield* Effect.mapError(Personal.openOne(loaded.value.state), keyStoreFailure("open state"))
    const state = yield* Schema.decodeUnknown(saga.stateSchema)(opened).pipe(
      Effect.mapError((cause) => new SagaStore.SagaStoreError({ operation: "decode state", cause }))
    )
    const timeouts = yield* store.timeouts(saga.name, id)
    return Option.some({
      status: loaded.value.status,
      state,
      version: loaded.value.version,
      compensations: loaded.value.compensations.length,
      pendingTimeouts: timeouts.map((t) => ({ name: t.name, dueAt: t.dueAt })),
      error: loaded.value.error
    })
  })

/** A key store failure met on a saga's state, as the saga store error the runner handles (retried if transient). */
const keyStoreFailure = (operation: string) => (error: KeyStore.KeyStoreError) =>
  new SagaStore.SagaStoreError({ operation, cause: error, transient: error.transient })
