/**
 * Housekeeping: `snapshots stats|prune` (see `Snapshot`) and `commands prune` (handled-command records
 * past their TTL, see `SqlEventStore.Options` `commandTtl`).
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SnapshotStats } from "../Snapshot.js"
import * as CommandRecords from "../sql/commandRecords.js"
import * as Dialect from "../sql/internal/dialect.js"
import { tables } from "../sql/migrations.js"
import * as SqlSnapshotStore from "../sql/SqlSnapshotStore.js"
import * as Connection from "./internal/connection.js"
import { CliError, json, print, table } from "./internal/output.js"

const snapshotStore = (connection: Connection.Connection) =>
  Effect.flatMap(Connection.tableOptions(connection), (options) =>
    Effect.mapError(
      SqlSnapshotStore.make({ ...options, migrate: false }),
      (error) => new CliError({ message: `the snapshot store failed: ${String(error.cause)}` })
    )
  )

const failed = (error: { readonly message: string }) =>
  new CliError({ message: `the snapshot store failed: ${error.message}` })

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`

/** `snapshots stats`: counts and sizes, in all and per category. */
export const stats = Command.make("stats", { ...Connection.options, json }, (options) =>
  Connection.withDatabase(
    options,
    { create: false },
    Effect.gen(function* () {
      const store = yield* snapshotStore(options)
      const found = yield* Effect.mapError(store.stats, failed)
      const mean = (s: { readonly count: number; readonly bytes: number }) => (s.count === 0 ? 0 : s.bytes / s.count)
      yield* print(options.json, { ...found, meanBytes: mean(found) }, (s: SnapshotStats & { meanBytes: number }) => [
        `${s.count} snapshots of ${s.streams} streams, ${kib(s.bytes)} (mean ${kib(s.meanBytes)})`,
        ...(s.categories.length === 0
          ? []
          : table(
              ["category", "snapshots", "streams", "size", "mean"],
              s.categories.map((c) => [c.category, String(c.count), String(c.streams), kib(c.bytes), kib(mean(c))])
            ))
      ])
    })
  )
).pipe(Command.withDescription("count snapshots and their sizes, in all and per category"))

/** `snapshots prune`: deletes what the options select (at least one of --keep, --state-version-below). */
export const prune = Command.make(
  "prune",
  {
    ...Connection.options,
    json,
    keep: Options.integer("keep").pipe(
      Options.withDescription("keep the newest N snapshots of each stream (at least 1)"),
      Options.optional
    ),
    stateVersionBelow: Options.integer("state-version-below").pipe(
      Options.withDescription("delete the snapshots of state versions below V"),
      Options.optional
    ),
    category: Options.text("category").pipe(Options.withDescription("only streams of this category"), Options.optional)
  },
  (options) =>
    Effect.gen(function* () {
      if (Option.isNone(options.keep) && Option.isNone(options.stateVersionBelow)) {
        return yield* new CliError({ message: "say what to prune: --keep N and/or --state-version-below V" })
      }
      if (Option.isSome(options.keep) && options.keep.value < 1) {
        return yield* new CliError({ message: "--keep must be at least 1" })
      }
      yield* Connection.withDatabase(
        options,
        { create: false },
        Effect.gen(function* () {
          const store = yield* snapshotStore(options)
          const deleted = yield* Effect.mapError(
            store.prune({
              ...Option.match(options.keep, { onNone: () => ({}), onSome: (keep) => ({ keep }) }),
              ...Option.match(options.stateVersionBelow, {
                onNone: () => ({}),
                onSome: (v) => ({ stateVersionBelow: v })
              }),
              ...Option.match(options.category, { onNone: () => ({}), onSome: (category) => ({ category }) })
            }),
            failed
          )
          yield* print(options.json, { deleted }, ({ deleted }) => `deleted ${deleted} snapshots`)
        })
      )
    })
).pipe(Command.withDescription("delete old snapshots: all but the newest N per stream, or of old state versions"))

export const snapshots = Command.make("snapshots").pipe(
  Command.withDescription("snapshot housekeeping"),
  Command.withSubcommands([stats, prune])
)

/** `commands prune`: deletes the handled-command records older than the TTL, in batches. */
export const pruneCommands = Command.make(
  "prune",
  {
    ...Connection.options,
    json,
    ttl: Options.text("ttl").pipe(
      Options.withDescription("the stores' command TTL, as a duration (default the stores' default, 7 days)"),
      Options.withDefault("7 days")
    )
  },
  (options) =>
    Effect.gen(function* () {
      const ttl = Duration.decodeUnknown(options.ttl)
      if (Option.isNone(ttl)) {
        return yield* new CliError({
          message: `--ttl takes a duration such as '24 hours', not ${JSON.stringify(options.ttl)}`
        })
      }
      yield* Connection.withDatabase(
        options,
        { create: false },
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const t = yield* Effect.flatMap(Connection.tableOptions(options), (o) =>
            Effect.mapError(tables(o), (e) => new CliError({ message: String(e.cause) }))
          )
          const dialect = yield* Effect.mapError(Dialect.of(sql), (e) => new CliError({ message: String(e.cause) }))
          const batchSize = 1000
          let deleted = 0
          for (;;) {
            const found = yield* Effect.mapError(
              CommandRecords.pruneExpired({
                sql,
                dialect,
                tables: t,
                commandTtlMillis: Duration.toMillis(ttl.value),
                batchSize
              }),
              (error) => new CliError({ message: `pruning command records failed: ${error.message}` })
            )
            deleted += found
            if (found < batchSize) break
          }
          yield* print(options.json, { deleted }, ({ deleted }) => `deleted ${deleted} expired command records`)
        })
      )
    })
).pipe(Command.withDescription("delete handled-command records older than the command TTL"))

export const commands = Command.make("commands").pipe(
  Command.withDescription("handled-command (dedup) records"),
  Command.withSubcommands([pruneCommands])
)
