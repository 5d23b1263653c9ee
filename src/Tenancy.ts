/**
 * Multi-tenancy: every operation runs for the tenant of its context ({@link withTenant}), and sees that
 * tenant's streams only. Two strategies, both an `EventStore` in front of the real ones: a shared store
 * with tenant-scoped streams ({@link layerShared}), or a store per tenant ({@link layerPerTenant}).
 * Checkpoints, sagas and snapshots are scoped alike ({@link layerScopedCheckpoints},
 * {@link layerScopedSagas}, {@link layerScopedSnapshots}); commands without a tenant are refused by
 * {@link commandMiddleware}. Nothing in the core imports this module: it decorates the contracts.
 * How each strategy stores tenants, and the trust boundary: {@link withTenant}.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RcMap from "effect/RcMap"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as CheckpointStore from "./CheckpointStore.js"
import {
  CheckpointStore as CheckpointStoreTag,
  CheckpointStoreError,
  DeadLetterNotFound,
  ProjectionNotFound
} from "./CheckpointStore.js"
import * as CommandBus from "./CommandBus.js"
import * as CommandMiddleware from "./CommandMiddleware.js"
import * as Event from "./Event.js"
import { type AppendOptions, EventStore, EventStoreError, InvalidAppend, type ReadAllOptions } from "./EventStore.js"
import { unreadableAppend, uniquenessProblem } from "./internal/appendPreparation.js"
import * as SagaStore from "./SagaStore.js"
import * as Snapshot from "./Snapshot.js"

const tenantPattern = /^[a-z0-9_]{1,63}$/

/** An operation needed a tenant and its context had none. */
export class TenantRequired extends Schema.TaggedError<TenantRequired>()("TenantRequired", {
  operation: Schema.String
}) {
  override get message() {
    return `${this.operation} needs a tenant: run it inside Tenancy.withTenant`
  }
}

/** Not a tenant id (see the module doc). */
export class InvalidTenant extends Schema.TaggedError<InvalidTenant>()("InvalidTenant", {
  tenantId: Schema.String
}) {
  override get message() {
    return `${JSON.stringify(this.tenantId)} is not a tenant id: 1 to 63 characters of a-z, 0-9 and _`
  }
}

/**
 * Runs `effect` for `tenantId` (and its commands' events carry it in their metadata).
 *
 * - **Shared store, tenant-scoped streams** ({@link layerShared}): one store holds every tenant; each
 *   tenant's streams are stored as `<tenant>~<streamId>`, so the tenant is part of every key and of every
 *   query (stream reads by key; global reads by the SQL stores' `tenant_id` column, computed from the
 *   stream id and indexed with the global order). Unique values and
 *   command ids are scoped the same way, and events carry `tenantId` in their metadata. Callers never see
 *   the prefix: ids, categories and errors come back as they gave them.
 * - **A store per tenant** ({@link layerPerTenant}): a database or schema per tenant, built on first use
 *   from the tenant id and kept while in use.
 *
 * Without a tenant in context every store operation fails (an `EventStoreError` whose cause is
 * {@link TenantRequired}); a command without one is refused by {@link commandMiddleware}. Projections,
 * sagas and the outbox relay run per tenant: run them inside {@link withTenant}, with the checkpoint and
 * saga stores scoped by {@link layerScopedCheckpoints} and {@link layerScopedSagas} (their names are then
 * per tenant too); aggregates with snapshots need {@link layerScopedSnapshots} (with either strategy,
 * unless the snapshot store is per tenant as well). The HTTP event browser reads through the same store, inside the tenant of the request
 * (`EventBrowserApi` option `tenantHeader`).
 *
 * **Gotchas**: {@link withTenant} is the trust boundary: code inside the process is trusted (it could
 * call it with any tenant), so the tenant must come from an authenticated source at the edges: the HTTP
 * header from a gateway that authenticated the request, NATS commands from services allowed on the
 * subjects. With a store per tenant, only let known tenants through (each new one builds a store). The
 * event bus carries every tenant's messages (each with `tenantId` in its metadata): a consumer serving
 * one tenant filters on it. In the shared store, `head` is the whole store's (a position, not another
 * tenant's data), and a tenant id is 1 to 63 characters of `a-z`, `0-9` and `_`, taking its length plus
 * one from the stream id's 255. Partitions (`readAll`'s `partition`, partitioned projections) hash the
 * stored stream id (`<tenant>~<streamId>`): each stream stays in one partition, but not the one
 * `Event.partitionOf` gives for the id the tenant sees. An operation without a tenant fails with an
 * `EventStoreError`, which runners retry: a runner started outside {@link withTenant} shows as `stalled`,
 * its last error naming the missing tenant.
 */
export const withTenant =
  (tenantId: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | InvalidTenant, R> =>
    tenantPattern.test(tenantId)
      ? Effect.flatMap(Event.CommandContext, (metadata) =>
          effect.pipe(
            Effect.provideService(Event.CurrentTenant, Option.some(tenantId)),
            Effect.provideService(Event.CommandContext, { ...metadata, tenantId })
          )
        )
      : Effect.fail(new InvalidTenant({ tenantId }))

/** The tenant in context, or `TenantRequired`. */
export const currentTenant = (operation: string): Effect.Effect<string, TenantRequired> =>
  Effect.flatMap(Event.CurrentTenant, (tenant) =>
    Option.match(tenant, { onNone: () => Effect.fail(new TenantRequired({ operation })), onSome: Effect.succeed })
  )

const separator = Event.tenantSeparator

/** What the shared store stores for `tenant`'s `name` (stream id, unique value constraint, command id). */
export const scopedName = (tenant: string, name: string): string => `${tenant}${separator}${name}`

/** The tenant's view of a stored name (`undefined` if the name is not the tenant's). */
const unscoped = (tenant: string, stored: string): string | undefined =>
  stored.startsWith(tenant + separator) ? stored.slice(tenant.length + separator.length) : undefined

/**
 * The events with their tenant in their metadata (whatever the caller put there). Anything malformed is
 * passed on as it is, for the store to refuse as the caller gave it.
 */
const stamped = (events: ReadonlyArray<Event.EventData>, tenant: string): ReadonlyArray<Event.EventData> =>
  Array.isArray(events)
    ? events.map((event: unknown) =>
        isObject(event) && (event.metadata === undefined || isObject(event.metadata))
          ? ({ ...event, metadata: { ...event.metadata, tenantId: tenant } } as Event.EventData)
          : (event as Event.EventData)
      )
    : events

/** An append's events and options as the shared store takes them, or why they are refused as given. */
const scopedAppend = (
  streamId: Event.StreamId,
  tenant: string,
  events: ReadonlyArray<Event.EventData>,
  options: AppendOptions | undefined
): Either.Either<
  { readonly events: ReadonlyArray<Event.EventData>; readonly options: AppendOptions },
  InvalidAppend
> => {
  // checked as given: scoped, an empty constraint or command id would look valid
  const uniqueness = uniquenessProblem(options)
  if (uniqueness !== undefined) return Either.left(new InvalidAppend({ streamId, ...uniqueness }))
  return Either.right({
    events: stamped(events, tenant),
    options: {
      ...options,
      ...(options?.claims === undefined
        ? {}
        : { claims: options.claims.map((u) => ({ ...u, constraint: scopedName(tenant, u.constraint) })) }),
      ...(options?.releases === undefined
        ? {}
        : { releases: options.releases.map((u) => ({ ...u, constraint: scopedName(tenant, u.constraint) })) }),
      ...(options?.commandId === undefined ? {} : { commandId: scopedName(tenant, options.commandId) })
    }
  })
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** A global read's options as the shared store applies them: the tenant's, with its categories scoped. */
const scopedFilters = (tenant: string, options: ReadAllOptions | undefined): ReadAllOptions => ({
  ...options,
  tenant,
  ...(options?.categories === undefined ? {} : { categories: options.categories.map((c) => scopedName(tenant, c)) })
})

/** A store error for an operation without a tenant. */
const required = (operation: string) =>
  Effect.mapError(currentTenant(operation), (cause) => new EventStoreError({ operation, cause }))

/** The tenant-scoped view of a shared store (see the module doc). */
export const sharedStore = (store: EventStore["Type"]): EventStore["Type"] => {
  const toTenant =
    (tenant: string) =>
    (event: Event.RecordedEvent): Event.RecordedEvent => {
      const streamId = unscoped(tenant, event.streamId)!
      return { ...event, streamId: streamId as Event.StreamId, category: Event.categoryOf(streamId) }
    }
  /** The error as the tenant would have it: its own stream ids, constraint names and command ids. */
  const streamError = <E>(tenant: string, error: E): E => {
    const fields = ["streamId", "owner", "constraint", "commandId"] as const
    const e = error as Partial<Record<(typeof fields)[number], unknown>>
    if (!fields.some((field) => typeof e[field] === "string")) return error
    const fixed: Record<string, string> = {}
    for (const field of fields) {
      const value = e[field]
      if (typeof value === "string") fixed[field] = unscoped(tenant, value) ?? "(another tenant's)"
    }
    return Object.assign(Object.create(Object.getPrototypeOf(error)), error, fixed) as E
  }
  /** Validates the caller's stream id as it is, so errors name it, not its stored form. */
  const own = (streamId: string) => Event.streamId(streamId)
  /** `operation` on the stored form of the tenant's stream, its errors as the tenant would have them. */
  const onStream = <A, E>(operation: string, streamId: string, f: (stored: string) => Effect.Effect<A, E>) =>
    Effect.flatMap(Effect.zipLeft(required(operation), own(streamId)), (tenant) =>
      Effect.mapError(f(scopedName(tenant, streamId)), (error) => streamError(tenant, error))
    )
  return EventStore.of({
    append: (streamId, events, options) =>
      Effect.gen(function* () {
        const tenant = yield* required("append")
        const id = yield* own(streamId)
        // read once, here: a getter or proxy that throws is the caller's bad input, as in the store
        const scoped = yield* Effect.try({
          try: () => scopedAppend(id, tenant, events, options),
          catch: (cause) => unreadableAppend(id, cause)
        })
        const result = yield* Effect.flatMap(scoped, (append) =>
          store.append(scopedName(tenant, streamId), append.events, append.options)
        ).pipe(Effect.mapError((error) => streamError(tenant, error)))
        return { ...result, streamId: streamId as Event.StreamId }
      }),
    readStream: (streamId, options) =>
      Stream.unwrap(
        Effect.map(Effect.zipLeft(required("readStream"), own(streamId)), (tenant) =>
          store.readStream(scopedName(tenant, streamId), options).pipe(
            Stream.map(toTenant(tenant)),
            Stream.mapError((error) => streamError(tenant, error))
          )
        )
      ),
    readStreamPage: (streamId, options) =>
      Effect.flatMap(Effect.zipLeft(required("readStreamPage"), own(streamId)), (tenant) =>
        store.readStreamPage(scopedName(tenant, streamId), options).pipe(
          Effect.map((page) => ({ ...page, events: page.events.map(toTenant(tenant)) })),
          Effect.mapError((error) => streamError(tenant, error))
        )
      ),
    readAll: (options) =>
      Stream.unwrap(
        Effect.map(required("readAll"), (tenant) =>
          store
            .readAll(scopedFilters(tenant, options))
            // the prefix is the filter; checking it again costs nothing
            .pipe(
              Stream.filter((event) => unscoped(tenant, event.streamId) !== undefined),
              Stream.map(toTenant(tenant))
            )
        )
      ),
    readAllPage: (options) =>
      Effect.flatMap(required("readAllPage"), (tenant) =>
        Effect.map(store.readAllPage(scopedFilters(tenant, options)), (page) => ({
          ...page,
          events: page.events.filter((event) => unscoped(tenant, event.streamId) !== undefined).map(toTenant(tenant))
        }))
      ),
    head: Effect.zipRight(required("head"), store.head),
    heldBack: (options) =>
      Effect.flatMap(required("heldBack"), (tenant) => store.heldBack(scopedFilters(tenant, options))),
    streamVersion: (streamId) => onStream("streamVersion", streamId, (id) => store.streamVersion(id)),
    deleteStream: (streamId, options) => onStream("deleteStream", streamId, (id) => store.deleteStream(id, options)),
    undeleteStream: (streamId) => onStream("undeleteStream", streamId, (id) => store.undeleteStream(id)),
    hardDeleteStream: (streamId, options) =>
      onStream("hardDeleteStream", streamId, (id) => store.hardDeleteStream(id, options)),
    truncateStream: (streamId, before) =>
      onStream("truncateStream", streamId, (id) => store.truncateStream(id, before)),
    archiveStream: (streamId, options) => onStream("archiveStream", streamId, (id) => store.archiveStream(id, options)),
    applyRetention: (cut) =>
      Effect.flatMap(required("applyRetention"), (tenant) =>
        store.applyRetention({ ...cut, category: scopedName(tenant, cut.category) })
      ),
    findCommand: (commandId) =>
      Effect.flatMap(required("findCommand"), (tenant) =>
        Effect.map(store.findCommand(scopedName(tenant, commandId)), (found) =>
          Option.flatMap(found, (record) =>
            Option.map(Option.fromNullable(unscoped(tenant, record.streamId)), (streamId) => ({
              ...record,
              commandId,
              streamId: streamId as Event.StreamId
            }))
          )
        )
      )
  })
}

/** The shared-store strategy: the `EventStore` in context, scoped to the tenant of each operation. */
export const layerShared: Layer.Layer<EventStore, never, EventStore> = Layer.effect(
  EventStore,
  Effect.map(EventStore, sharedStore)
)

/**
 * The store-per-tenant strategy: `storeOf(tenant)` builds a tenant's store (its own database or schema);
 * it is built on first use and released when unused for `idleTimeToLive` (default 5 minutes).
 */
export const layerPerTenant = <E, R>(
  storeOf: (tenant: string) => Layer.Layer<EventStore, E, R>,
  options: { readonly idleTimeToLive?: `${number} ${"seconds" | "minutes"}` } = {}
): Layer.Layer<EventStore, never, R> =>
  Layer.scoped(
    EventStore,
    Effect.gen(function* () {
      const stores = yield* RcMap.make({
        lookup: (tenant: string) =>
          Effect.map(Layer.build(storeOf(tenant)), (context) => Context.get(context, EventStore)).pipe(
            Effect.mapError((cause) => new EventStoreError({ operation: "open tenant store", cause }))
          ),
        idleTimeToLive: options.idleTimeToLive ?? "5 minutes"
      })
      const use = <A, E2>(operation: string, f: (store: EventStore["Type"], tenant: string) => Effect.Effect<A, E2>) =>
        Effect.scoped(
          Effect.flatMap(required(operation), (tenant) =>
            Effect.flatMap(RcMap.get(stores, tenant), (store) => f(store, tenant))
          )
        )
      const useStream = <A, E2>(operation: string, f: (store: EventStore["Type"]) => Stream.Stream<A, E2>) =>
        Stream.unwrapScoped(Effect.flatMap(required(operation), (tenant) => Effect.map(RcMap.get(stores, tenant), f)))
      return EventStore.of({
        append: (streamId, events, appendOptions) =>
          use("append", (store, tenant) => store.append(streamId, stamped(events, tenant), appendOptions)),
        readStream: (streamId, readOptions) =>
          useStream("readStream", (store) => store.readStream(streamId, readOptions)),
        readStreamPage: (streamId, readOptions) =>
          use("readStreamPage", (store) => store.readStreamPage(streamId, readOptions)),
        readAll: (readOptions) => useStream("readAll", (store) => store.readAll(readOptions)),
        readAllPage: (readOptions) => use("readAllPage", (store) => store.readAllPage(readOptions)),
        head: use("head", (store) => store.head),
        heldBack: (options) => use("heldBack", (store) => store.heldBack(options)),
        streamVersion: (streamId) => use("streamVersion", (store) => store.streamVersion(streamId)),
        findCommand: (commandId) => use("findCommand", (store) => store.findCommand(commandId)),
        deleteStream: (streamId, deleteOptions) =>
          use("deleteStream", (store) => store.deleteStream(streamId, deleteOptions)),
        undeleteStream: (streamId) => use("undeleteStream", (store) => store.undeleteStream(streamId)),
        hardDeleteStream: (streamId, deleteOptions) =>
          use("hardDeleteStream", (store) => store.hardDeleteStream(streamId, deleteOptions)),
        truncateStream: (streamId, before) => use("truncateStream", (store) => store.truncateStream(streamId, before)),
        archiveStream: (streamId, archiveOptions) =>
          use("archiveStream", (store) => store.archiveStream(streamId, archiveOptions)),
        applyRetention: (cut) => use("applyRetention", (store) => store.applyRetention(cut))
      })
    })
  )

/**
 * A checkpoint store whose projection names are scoped to the tenant in context, so the same projection
 * (or saga, or relay) runs once per tenant with checkpoints, leases and dead letters of its own. Leases
 * come back from `claim` already scoped and are passed on as they are.
 *
 * The operators' operations are scoped alike: `projections` lists the tenant's projections only, by their
 * names, and rebuild requests and dead-letter discards and retries name the tenant's projection. The
 * command-line tool works on the undecorated store: there it sees every tenant's projections, stored as
 * `<tenant>~<name>`, and makes its requests by those names; the tenant's runners carry them out.
 */
export const scopedCheckpoints = (
  store: CheckpointStore.CheckpointStore["Type"]
): CheckpointStore.CheckpointStore["Type"] => {
  const tenantOf = (operation: string) =>
    Effect.mapError(currentTenant(operation), (cause) => new CheckpointStoreError({ operation, cause }))
  const scope = (operation: string, id: CheckpointStore.ProjectionId) =>
    Effect.map(tenantOf(operation), (tenant) => ({ ...id, name: scopedName(tenant, id.name) }))
  return CheckpointStoreTag.of({
    ...store,
    register: (id, partitions) => Effect.flatMap(scope("register", id), (scoped) => store.register(scoped, partitions)),
    heartbeat: (id, worker, ttl) =>
      Effect.flatMap(scope("heartbeat", id), (scoped) => store.heartbeat(scoped, worker, ttl)),
    leave: (id, worker) => Effect.flatMap(scope("leave", id), (scoped) => store.leave(scoped, worker)),
    claim: (id, partition, owner, ttl) =>
      Effect.flatMap(scope("claim", id), (scoped) => store.claim(scoped, partition, owner, ttl)),
    deadLetter: (letter) =>
      Effect.flatMap(scope("deadLetter", letter.projection), (projection) =>
        store.deadLetter({ ...letter, projection })
      ),
    partitions: (id) => Effect.flatMap(scope("partitions", id), store.partitions),
    reset: (id) => Effect.flatMap(scope("reset", id), store.reset),
    activate: (id) => Effect.flatMap(scope("activate", id), store.activate),
    deadLetters: (name) =>
      Effect.flatMap(tenantOf("deadLetters"), (tenant) =>
        Effect.map(store.deadLetters(scopedName(tenant, name)), (letters) =>
          letters.map((letter) => ({ ...letter, projection: { ...letter.projection, name } }))
        )
      ),
    activeVersion: (name) =>
      Effect.flatMap(tenantOf("activeVersion"), (tenant) => store.activeVersion(scopedName(tenant, name))),
    projections: Effect.flatMap(tenantOf("projections"), (tenant) =>
      Effect.map(store.projections, (all) =>
        all.flatMap((info) => {
          const name = unscoped(tenant, info.id.name)
          return name === undefined ? [] : [{ ...info, id: { ...info.id, name } }]
        })
      )
    ),
    requestRebuild: (id) =>
      Effect.flatMap(scope("requestRebuild", id), (scoped) =>
        Effect.catchTag(store.requestRebuild(scoped), "ProjectionNotFound", (error) =>
          Effect.fail(new ProjectionNotFound({ ...error, projection: id.name }))
        )
      ),
    takeRebuild: (id) => Effect.flatMap(scope("takeRebuild", id), store.takeRebuild),
    discardDeadLetter: (name, id) =>
      Effect.flatMap(tenantOf("discardDeadLetter"), (tenant) =>
        Effect.catchTag(store.discardDeadLetter(scopedName(tenant, name), id), "DeadLetterNotFound", () =>
          Effect.fail(new DeadLetterNotFound({ projection: name, id }))
        )
      ),
    retryDeadLetter: (name, id) =>
      Effect.flatMap(tenantOf("retryDeadLetter"), (tenant) =>
        Effect.catchTag(store.retryDeadLetter(scopedName(tenant, name), id), "DeadLetterNotFound", () =>
          Effect.fail(new DeadLetterNotFound({ projection: name, id }))
        )
      ),
    retriesRequested: (id) =>
      Effect.flatMap(scope("retriesRequested", id), (scoped) =>
        Effect.map(store.retriesRequested(scoped), (letters) =>
          letters.map((letter) => ({ ...letter, projection: { ...letter.projection, name: id.name } }))
        )
      ),
    takeRetry: (name, id) =>
      Effect.flatMap(tenantOf("takeRetry"), (tenant) => store.takeRetry(scopedName(tenant, name), id)),
    retryFailed: (name, id, error, at) =>
      Effect.flatMap(tenantOf("retryFailed"), (tenant) => store.retryFailed(scopedName(tenant, name), id, error, at))
  })
}

/** The `CheckpointStore` in context, scoped to the tenant of each operation (see {@link scopedCheckpoints}). */
export const layerScopedCheckpoints: Layer.Layer<
  CheckpointStore.CheckpointStore,
  never,
  CheckpointStore.CheckpointStore
> = Layer.effect(CheckpointStoreTag, Effect.map(CheckpointStoreTag, scopedCheckpoints))

/**
 * A snapshot store whose stream ids are scoped to the tenant in context, as the shared store's are: give
 * it to aggregates over a shared store, or one tenant would load another's state of a same-named stream.
 * `deleteStream` deletes those of the tenant's stream. `stats` and `prune` are the operator's: they see every
 * tenant's snapshots (a tenant's category is `<tenant>~<category>`).
 */
export const scopedSnapshots = (store: Snapshot.SnapshotStore["Type"]): Snapshot.SnapshotStore["Type"] => {
  const tenantOf = (operation: string) =>
    Effect.mapError(currentTenant(operation), (cause) => new Snapshot.SnapshotStoreError({ operation, cause }))
  return Snapshot.SnapshotStore.of({
    ...store,
    load: (streamId, options) =>
      Effect.flatMap(tenantOf("load"), (tenant) =>
        Effect.map(
          store.load(scopedName(tenant, streamId), options),
          Option.map((record) => ({ ...record, streamId }))
        )
      ),
    save: (record) =>
      Effect.flatMap(tenantOf("save"), (tenant) =>
        store.save({ ...record, streamId: scopedName(tenant, record.streamId) })
      ),
    deleteStream: (streamId) =>
      Effect.flatMap(tenantOf("deleteStream"), (tenant) => store.deleteStream(scopedName(tenant, streamId)))
  })
}

/** The `SnapshotStore` in context, scoped to the tenant of each operation (see {@link scopedSnapshots}). */
export const layerScopedSnapshots: Layer.Layer<Snapshot.SnapshotStore, never, Snapshot.SnapshotStore> = Layer.effect(
  Snapshot.SnapshotStore,
  Effect.map(Snapshot.SnapshotStore, scopedSnapshots)
)

/**
 * A saga store whose saga names are scoped to the tenant in context, so a saga runs once per tenant and
 * two tenants' instances never share an id. Timeouts come back from `due` already scoped. `instances`
 * lists the tenant's instances of the saga; the command-line tool, on the undecorated store, names a
 * tenant's saga `<tenant>~<saga>`.
 */
export const scopedSagas = (store: SagaStore.SagaStore["Type"]): SagaStore.SagaStore["Type"] => {
  const scope = <A, E, R>(operation: string, saga: string, f: (scoped: string) => Effect.Effect<A, E, R>) =>
    Effect.flatMap(
      Effect.mapError(currentTenant(operation), (cause) => new SagaStore.SagaStoreError({ operation, cause })),
      (tenant) => f(scopedName(tenant, saga))
    )
  return SagaStore.SagaStore.of({
    ...store,
    load: (saga, instance) => scope("load", saga, (scoped) => store.load(scoped, instance)),
    save: (saga, instance, expected, next, changes) =>
      scope("save", saga, (scoped) => store.save(scoped, instance, expected, next, changes)),
    timeouts: (saga, instance) => scope("timeouts", saga, (scoped) => store.timeouts(scoped, instance)),
    due: (saga, limit) => scope("due", saga, (scoped) => store.due(scoped, limit)),
    lock: (saga, instance) => scope("lock", saga, (scoped) => store.lock(scoped, instance)),
    recordFailure: (saga, instance, cause, failure) =>
      scope("recordFailure", saga, (scoped) => store.recordFailure(scoped, instance, cause, failure)),
    failureOf: (saga, instance, cause) =>
      scope("failureOf", saga, (scoped) => store.failureOf(scoped, instance, cause)),
    instances: (saga, options) => scope("instances", saga, (scoped) => store.instances(scoped, options))
  })
}

/** The `SagaStore` in context, scoped to the tenant of each operation (see {@link scopedSagas}). */
export const layerScopedSagas: Layer.Layer<SagaStore.SagaStore, never, SagaStore.SagaStore> = Layer.effect(
  SagaStore.SagaStore,
  Effect.map(SagaStore.SagaStore, scopedSagas)
)

/**
 * Command bus middleware: a command runs for the tenant named in its metadata (`tenantId`, or else the
 * caller's tenant in process), and is refused (`Unauthorized`, requiring `tenant`) without one, or when
 * it names another tenant than the caller's.
 */
export const commandMiddleware: CommandBus.Middleware = CommandMiddleware.make("tenancy", (_command, info, next) =>
  Effect.gen(function* () {
    const caller = yield* Event.CurrentTenant
    // a command dispatched in process by code running for a tenant is that tenant's
    const named = info.metadata.tenantId ?? Option.getOrUndefined(caller)
    const refuse = new CommandBus.Unauthorized({
      commandTag: info.tag,
      required: ["tenant"],
      ...(info.metadata.principal === undefined ? {} : { principal: info.metadata.principal })
    })
    if (typeof named !== "string" || !tenantPattern.test(named)) return yield* refuse
    if (Option.isSome(caller) && caller.value !== named) return yield* refuse
    return yield* next.pipe(
      Effect.provideService(Event.CurrentTenant, Option.some(named)),
      Effect.provideService(Event.CommandContext, { ...info.metadata, tenantId: named })
    )
  })
)
