/**
 * Operating the runners from outside the application: `projections list|status|rebuild|reset`,
 * `dead-letters list|retry|discard`, `sagas list|show`. Rebuilds and retries are requests that the
 * application's running workers carry out (they hold the projection's code); the CLI records them and,
 * with `--wait`, follows the rebuild to its end.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Terminal from "@effect/platform/Terminal"
import * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as CheckpointStore from "../CheckpointStore.js"
import * as Event from "../Event.js"
import * as SagaStore from "../SagaStore.js"
import * as SqlCheckpointStore from "../sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../sql/SqlEventStore.js"
import * as SqlSagaStore from "../sql/SqlSagaStore.js"
import * as Connection from "./internal/connection.js"
import { CliError, json, print, table } from "./internal/output.js"

/** Opens a store on the connection's tables, never creating or changing them. */
const open = <S, E extends { readonly message: string }, R>(
  connection: Connection.Connection,
  what: string,
  make: (options: {
    readonly migrate: false
    readonly schema?: string
    readonly tablePrefix?: string
  }) => Effect.Effect<S, E, R>
) =>
  Effect.flatMap(Connection.tableOptions(connection), (tables) =>
    Effect.mapError(
      make({ ...tables, migrate: false }),
      (error) => new CliError({ message: `the ${what} failed: ${error.message}` })
    )
  )

/** A store's failure in one line (a typed refusal says what it is itself). */
const failed = (what: string) => (error: { readonly _tag: string; readonly message: string }) =>
  new CliError({ message: /StoreError$/.test(error._tag) ? `the ${what} failed: ${error.message}` : error.message })

const withCheckpoints = <A, E, R>(
  connection: Connection.Connection,
  f: (store: CheckpointStore.CheckpointStore["Type"]) => Effect.Effect<A, E, R>
) =>
  Connection.withDatabase(
    connection,
    { create: false },
    Effect.flatMap(open(connection, "checkpoint store", SqlCheckpointStore.make), f)
  )

const name = Args.text({ name: "projection" }).pipe(Args.withDescription("the projection's name"))
const version = Options.integer("version").pipe(
  Options.withDescription("the projection's version (default: the active one, else the latest registered)"),
  Options.optional
)

/** The id of `name` at the version asked, or the active one, or the latest registered. */
const resolve = (store: CheckpointStore.CheckpointStore["Type"], projection: string, asked: Option.Option<number>) =>
  Effect.gen(function* () {
    const known = (yield* Effect.mapError(store.projections, failed("checkpoint store"))).filter(
      (p) => p.id.name === projection
    )
    const chosen = Option.isSome(asked)
      ? known.find((p) => p.id.version === asked.value)
      : (known.find((p) => p.active) ?? known.toSorted((a, b) => b.id.version - a.id.version)[0])
    if (chosen === undefined) {
      return yield* new CliError({
        message: `no projection ${projection}${Option.isSome(asked) ? ` version ${asked.value}` : ""} is registered`
      })
    }
    return chosen
  })

/** A progress bar of 30 cells, with the percentage and the counts. */
const bar = (done: number, total: number) => {
  const fraction = total === 0 ? 1 : Math.min(1, done / total)
  const filled = Math.round(fraction * 30)
  return `[${"#".repeat(filled)}${".".repeat(30 - filled)}] ${Math.floor(fraction * 100)}% ~${done}/${total} positions`
}

const checkpointText = (c: Event.Checkpoint) => `${c.transaction}:${c.position}`

export const list = Command.make("list", { ...Connection.options, json }, (options) =>
  withCheckpoints(options, (store) =>
    Effect.flatMap(Effect.mapError(store.projections, failed("checkpoint store")), (projections) =>
      print(options.json, projections, (rows) =>
        table(
          ["projection", "version", "partitions", "active", "rebuild"],
          rows.map((p) => [
            p.id.name,
            String(p.id.version),
            String(p.partitions),
            p.active ? "yes" : "",
            p.pendingRebuild ? "requested" : ""
          ])
        )
      )
    )
  )
).pipe(Command.withDescription("list the registered projections and versions"))

/** Each partition's checkpoint, holder and state, and how far behind the head it is (in positions). */
const partitionsOf = (
  connection: Connection.Connection,
  store: CheckpointStore.CheckpointStore["Type"],
  id: CheckpointStore.ProjectionId
) =>
  Effect.gen(function* () {
    const events = yield* open(connection, "event store", (o) =>
      Effect.scoped(SqlEventStore.make({ ...o, commandPruning: false }))
    )
    const head = yield* Effect.mapError(events.head, failed("event store"))
    const now = yield* DateTime.now
    const partitions = yield* Effect.mapError(store.partitions(id), failed("checkpoint store"))
    return partitions.map((p) => ({
      partition: p.partition,
      checkpoint: checkpointText(p.checkpoint),
      behind: Number(head.position - p.checkpoint.position > 0n ? head.position - p.checkpoint.position : 0n),
      head: checkpointText(head),
      owner: Option.getOrNull(p.owner),
      leaseExpired: p.leaseExpiresAt < DateTime.toEpochMillis(now),
      live: p.live,
      pendingRebuild: p.pendingRebuild
    }))
  })

export const status = Command.make("status", { ...Connection.options, json, name, version }, (options) =>
  withCheckpoints(options, (store) =>
    Effect.gen(function* () {
      const info = yield* resolve(store, options.name, options.version)
      const partitions = yield* partitionsOf(options, store, info.id)
      yield* print(options.json, { ...info, partitions }, (s) => [
        `${s.id.name} version ${s.id.version}${s.active ? " (active)" : ""}${s.pendingRebuild ? ", rebuild requested" : ""}`,
        ...table(
          ["partition", "checkpoint", "behind", "owner", "state"],
          s.partitions.map((p) => [
            String(p.partition),
            p.checkpoint,
            `~${p.behind}`,
            p.owner === null || p.leaseExpired ? "-" : p.owner,
            p.live ? "live" : "catching up"
          ])
        )
      ])
    })
  )
).pipe(Command.withDescription("show a projection's partitions: checkpoint, distance to the head, holder, state"))

export const rebuild = Command.make(
  "rebuild",
  {
    ...Connection.options,
    json,
    name,
    version,
    wait: Options.boolean("wait").pipe(Options.withDescription("follow the rebuild to its end, reporting progress"))
  },
  (options) =>
    withCheckpoints(options, (store) =>
      Effect.gen(function* () {
        const info = yield* resolve(store, options.name, options.version)
        yield* Effect.mapError(store.requestRebuild(info.id), failed("checkpoint store"))
        const label = `${info.id.name} version ${info.id.version}`
        if (!options.wait) {
          return yield* print(
            options.json,
            { requested: info.id },
            () => `rebuild of ${label} requested: the application's running workers carry it out`
          )
        }
        yield* Console.error(`rebuild of ${label} requested; waiting for a running worker to carry it out`)
        const terminal = yield* Terminal.Terminal
        const tty = !options.json && (yield* terminal.isTTY)
        // done: the request taken, and every partition live again; progress: the farthest-behind partition
        for (let last = ""; ;) {
          const partitions = yield* partitionsOf(options, store, info.id)
          // a live partition's checkpoint is its own last event, behind the head when the last are another's
          const behind = Math.max(0, ...partitions.filter((p) => !p.live).map((p) => p.behind))
          const total = Number(/^\d+:(\d+)$/.exec(partitions[0]?.head ?? "0:0")![1])
          const pending = partitions.some((p) => p.pendingRebuild)
          const done = !pending && partitions.every((p) => p.live)
          const progress = {
            projection: info.id,
            state: pending ? "requested" : done ? "done" : "rebuilding",
            done: pending ? 0 : done ? total : Math.max(0, total - behind),
            total
          }
          const line = `${progress.state} ${progress.done}/${progress.total}`
          if (tty) {
            // a bar redrawn in place; the last one stays, with a newline
            yield* Effect.orDie(
              terminal.display(`\r${label}: ${bar(progress.done, progress.total)} ${progress.state}${done ? "\n" : ""}`)
            )
          } else if (line !== last) {
            yield* print(options.json, progress, (p) => `${label}: ${p.state}, ~${p.done}/${p.total} positions`)
          }
          last = line
          if (done) return
          yield* Effect.sleep("500 millis")
        }
      })
    )
).pipe(
  Command.withDescription(
    "ask the application's running workers to rebuild a projection in place (truncate, then replay); --wait follows it"
  )
)

export const reset = Command.make("reset", { ...Connection.options, json, name, version }, (options) =>
  withCheckpoints(options, (store) =>
    Effect.gen(function* () {
      const info = yield* resolve(store, options.name, options.version)
      yield* Effect.mapError(store.reset(info.id), failed("checkpoint store"))
      yield* print(
        options.json,
        { reset: info.id },
        () =>
          `${info.id.name} version ${info.id.version}: every partition back to the start of the log, dead letters dropped`
      )
    })
  )
).pipe(
  Command.withDescription(
    "move a projection's checkpoints back to the start without truncating its read model (for idempotent handlers)"
  )
)

export const projections = Command.make("projections").pipe(
  Command.withDescription("projection runners: list, status, rebuild, reset"),
  Command.withSubcommands([list, status, rebuild, reset])
)

const letterId = Args.integer({ name: "id" }).pipe(Args.withDescription("the dead letter's id, as listed"))

export const deadLetters = Command.make("dead-letters").pipe(
  Command.withDescription("events projections gave up on: list, retry, discard"),
  Command.withSubcommands([
    Command.make("list", { ...Connection.options, json, name }, (options) =>
      withCheckpoints(options, (store) =>
        Effect.flatMap(Effect.mapError(store.deadLetters(options.name), failed("checkpoint store")), (letters) =>
          print(
            options.json,
            letters.map((l) => ({
              ...l,
              at: DateTime.formatIso(l.at),
              event: { ...l.event, recordedAt: DateTime.formatIso(l.event.recordedAt) }
            })),
            (rows) =>
              table(
                ["id", "version", "partition", "event", "at", "retry", "error"],
                rows.map((l) => [
                  String(l.id),
                  String(l.projection.version),
                  String(l.partition),
                  `${l.event.streamId}@${l.event.version} ${l.event.type}`,
                  l.at,
                  l.retryRequested ? "requested" : "",
                  l.error.split("\n")[0]!.slice(0, 120)
                ])
              )
          )
        )
      )
    ).pipe(Command.withDescription("list a projection's dead letters, oldest first")),
    Command.make("retry", { ...Connection.options, json, name, id: letterId }, (options) =>
      withCheckpoints(options, (store) =>
        Effect.zipRight(
          Effect.mapError(store.retryDeadLetter(options.name, options.id), failed("checkpoint store")),
          print(
            options.json,
            { retry: options.id },
            () => `dead letter ${options.id}: retry requested (the workers handle it again)`
          )
        )
      )
    ).pipe(Command.withDescription("ask the running workers to handle a dead letter's event again")),
    Command.make("discard", { ...Connection.options, json, name, id: letterId }, (options) =>
      withCheckpoints(options, (store) =>
        Effect.zipRight(
          Effect.mapError(store.discardDeadLetter(options.name, options.id), failed("checkpoint store")),
          print(options.json, { discarded: options.id }, () => `dead letter ${options.id} discarded`)
        )
      )
    ).pipe(Command.withDescription("delete a dead letter for good"))
  ])
)

const withSagas = <A, E, R>(
  connection: Connection.Connection,
  f: (store: SagaStore.SagaStore["Type"]) => Effect.Effect<A, E, R>
) =>
  Connection.withDatabase(
    connection,
    { create: false },
    Effect.flatMap(open(connection, "saga store", SqlSagaStore.make), f)
  )

const saga = Args.text({ name: "saga" }).pipe(Args.withDescription("the saga's name"))

export const sagas = Command.make("sagas").pipe(
  Command.withDescription("saga instances: list, show"),
  Command.withSubcommands([
    Command.make(
      "list",
      {
        ...Connection.options,
        json,
        saga,
        status: Options.choice("status", SagaStore.Status.literals).pipe(Options.optional),
        limit: Options.integer("limit").pipe(Options.withDefault(100)),
        after: Options.text("after").pipe(Options.withDescription("the last id of the previous page"), Options.optional)
      },
      (options) =>
        withSagas(options, (store) =>
          Effect.flatMap(
            Effect.mapError(
              store.instances(options.saga, {
                limit: options.limit,
                ...Option.match(options.status, { onNone: () => ({}), onSome: (status) => ({ status }) }),
                ...Option.match(options.after, { onNone: () => ({}), onSome: (after) => ({ after }) })
              }),
              failed("saga store")
            ),
            (instances) =>
              print(
                options.json,
                instances.map((i) => ({ ...i, error: Option.getOrNull(i.error) })),
                (rows) =>
                  table(
                    ["instance", "version", "status", "updated", "error"],
                    rows.map((i) => [
                      i.id,
                      String(i.version),
                      i.status,
                      DateTime.formatIso(DateTime.unsafeMake(i.updatedAt)),
                      i.error ?? ""
                    ])
                  )
              )
          )
        )
    ).pipe(Command.withDescription("list a saga's instances by id, a page at a time")),
    Command.make("show", { ...Connection.options, json, saga, instance: Args.text({ name: "instance" }) }, (options) =>
      withSagas(options, (store) =>
        Effect.gen(function* () {
          const found = yield* Effect.mapError(store.load(options.saga, options.instance), failed("saga store"))
          if (Option.isNone(found)) {
            return yield* new CliError({ message: `no instance ${options.instance} of saga ${options.saga}` })
          }
          const timeouts = yield* Effect.mapError(store.timeouts(options.saga, options.instance), failed("saga store"))
          const instance = {
            ...found.value,
            error: Option.getOrNull(found.value.error),
            timeouts: timeouts.map((t) => ({ name: t.name, dueAt: DateTime.formatIso(DateTime.unsafeMake(t.dueAt)) }))
          }
          yield* print(options.json, instance, (i) => [
            `${options.saga} ${options.instance}: ${i.status}, version ${i.version}${i.error === null ? "" : `, error: ${i.error}`}`,
            `state: ${JSON.stringify(i.state)}`,
            `compensations: ${JSON.stringify(i.compensations)}`,
            ...i.timeouts.map((t) => `timeout ${t.name} due ${t.dueAt}`)
          ])
        })
      )
    ).pipe(Command.withDescription("show a saga instance: state, compensations, timeouts"))
  ])
)
