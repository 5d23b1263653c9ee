/**
 * Calling the PostgreSQL append function: one append per round trip, or, outside a caller's transaction,
 * grouped with concurrent ones (group commit: one round trip and one commit for a batch, each append in
 * its own subtransaction so that it is checked, committed or refused on its own). Refusals the function
 * raises on purpose come back as typed errors.
 *
 * Both calls run on the client's `HotPath` outside transactions when it has one (prepared statements on
 * `Postgres.layer`'s),
 * and open no `sql.execute` span of their own: on this hot path the `EventStore.append` span around them
 * is the one span per operation.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { DuplicateCommand, EventStoreError, UniqueConstraintViolation } from "../../EventStore.js"
import { type PreparedAppend } from "../../internal/appendPreparation.js"
import * as Metrics from "../../Metrics.js"
import { storeError } from "../../sql/classify.js"
import * as HotPath from "../../sql/HotPath.js"
import * as Batcher from "../../sql/internal/batcher.js"
import { toDuplicate } from "../../sql/commandRecords.js"
import type { Tables } from "../../sql/migrations.js"
import { refusalCode } from "./functions.js"

/** Appends per round trip under group commit (PostgreSQL). */
export const batchSize = Metrics.appendBatchSize

/** Options of {@link make}. */
export interface Options {
  readonly sql: SqlClient.SqlClient
  /** The client's hot path, if its Layer provides one (see `HotPath`). */
  readonly hotPath: Option.Option<HotPath.HotPath["Type"]>
  readonly tables: Tables
  readonly commandTtl: number
  readonly groupCommit: false | { readonly maxBatch?: number; readonly writers?: number } | undefined
}

/** The function that runs one append; group-commit writers, if on, live in the scope. */
export const make = (
  options: Options
): Effect.Effect<(append: PreparedAppend) => Effect.Effect<Outcome, PgRefusal>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const run = HotPath.runners(options.sql, options.hotPath)
    // identifiers are validated lower-case names (see `tables`): they need no quoting
    const appendText =
      // positions as one comma-separated text: split at once, where `pg` parses an array character by character
      `select o_outcome, o_version, array_to_string(o_positions, ',') as o_positions, o_stored ` +
      `from ${options.tables.appendFunction}(` +
      "$1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10)"
    const batchText = `select ${options.tables.appendBatchFunction}($1::jsonb) as result`

    /** One append, one round trip: the append function. */
    const callAppend = (append: PreparedAppend, runner: HotPath.Run) => {
      const expected = append.expectedVersion
      return Effect.flatMap(
        asText(() => eventsJson(append)),
        (events) =>
          runner(appendText, [
            append.streamId,
            append.category,
            append.streamHash,
            expected._tag,
            expected._tag === "Exact" ? expected.version : 0,
            events,
            JSON.stringify(append.claims),
            JSON.stringify(append.releases),
            append.commandId ?? null,
            options.commandTtl
          ])
      ).pipe(
        Effect.map(([row]): Outcome => ({
          outcome: row.o_outcome,
          version: row.o_version,
          positions: row.o_positions === null ? null : row.o_positions === "" ? [] : row.o_positions.split(","),
          stored: row.o_stored
        })),
        Effect.catchTag("SqlError", (error) => Effect.fail(refusal(append, error.cause) ?? storeError("append")(error)))
      )
    }

    /**
     * Several appends, one round trip and one commit (group commit); each succeeds or fails alone. Even one
     * append taken by a writer goes through the batch function: its bounded lock wait keeps a stream whose
     * row another transaction holds from stalling the writer, and every append queued behind it.
     */
    const callAppendBatch = (appends: ReadonlyArray<PreparedAppend>) => {
      // one lock order for every batch (by stream, keeping each stream's appends in arrival order): no deadlocks
      const order = appends
        .map((_, i) => i)
        .sort((a, b) => compareStreams(appends[a]!.streamId, appends[b]!.streamId) || a - b)
      const batch = asText(() => "[" + order.map((i) => batchItemJson(appends[i]!, options.commandTtl)).join(",") + "]")
      return Effect.flatMap(batch, (text) => run.outsideTransaction(batchText, [text])).pipe(
        Effect.mapError((cause) => (cause._tag === "EventStoreError" ? cause : storeError("append")(cause))),
        Effect.map(([row]) => {
          const results: ReadonlyArray<PgBatchResult> = row.result
          const exits: Array<Exit.Exit<Outcome | Busy, PgRefusal>> = []
          order.forEach((index, k) => {
            const r = results[k]!
            exits[index] =
              r.outcome === "error"
                ? Exit.fail(refusal(appends[index]!, r) ?? storeError("append")(r))
                : r.outcome === "busy"
                  ? Exit.succeed(busy)
                  : Exit.succeed({ outcome: r.outcome, version: r.version, positions: r.positions, stored: r.stored })
          })
          return exits
        })
      )
    }

    const batched =
      options.groupCommit !== false
        ? yield* Batcher.make({
            maxBatch: Math.max(1, options.groupCommit?.maxBatch ?? 32),
            writers: Math.max(1, options.groupCommit?.writers ?? 1),
            run: (appends: ReadonlyArray<PreparedAppend>) =>
              Effect.zipRight(Metric.update(batchSize, appends.length), callAppendBatch(appends)),
            runOne: (append: PreparedAppend) =>
              Effect.zipRight(Metric.update(batchSize, 1), callAppend(append, run.outsideTransaction)),
            // well below PostgreSQL's jsonb and V8's string limits, so that appends fine alone are fine together
            weight: appendWeight,
            maxWeight: maxBatchChars,
            closed: () => new EventStoreError({ operation: "append", cause: new Error("the event store was closed") })
          })
        : undefined

    /**
     * Inside the caller's transaction, the append joins it; otherwise it may share a group commit. One that
     * its batch left out for waiting on a lock (`busy`) runs again on its own, in the caller's fiber, where
     * its wait holds up no other append.
     */
    return (append: PreparedAppend) =>
      Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) =>
        Option.isSome(transaction)
          ? callAppend(append, run.viaClient)
          : batched !== undefined
            ? Effect.flatMap(batched(append), (outcome) =>
                outcome.outcome === "busy" ? callAppend(append, run.outsideTransaction) : Effect.succeed(outcome)
              )
            : callAppend(append, run.outsideTransaction)
      )
  })

/** The append function's answer. */
export interface Outcome {
  readonly outcome: "ok" | "conflict" | "duplicates" | "deleted" | "hard-deleted"
  readonly version: number
  readonly positions: ReadonlyArray<string> | null
  readonly stored: ReadonlyArray<number | null> | null
}

/** A batched append left out for waiting on a lock (see `PgFunctions.batchLockWaitMs`): run it again alone. */
const busy = { outcome: "busy" } as const
type Busy = typeof busy

/** One append's answer in a batch: an outcome, `busy`, or the error its subtransaction raised. */
type PgBatchResult =
  | Outcome
  | Busy
  | { readonly outcome: "error"; readonly code: string; readonly message: string; readonly detail: string | null }

type PgRefusal = UniqueConstraintViolation | DuplicateCommand | EventStoreError

/**
 * The typed refusal behind an error the append function raised on purpose (its {@link refusalCode}, with
 * the refusal's fields as JSON in the detail), or `undefined` for any other error.
 */
const refusal = (append: PreparedAppend, cause: unknown): UniqueConstraintViolation | DuplicateCommand | undefined => {
  const error = cause as { readonly code?: unknown; readonly detail?: unknown } | undefined
  if (typeof error?.detail !== "string") return undefined
  switch (error.code) {
    case refusalCode.uniqueValueTaken: {
      const detail = JSON.parse(error.detail) as {
        readonly constraint: string
        readonly value: string
        readonly owner: string
      }
      return new UniqueConstraintViolation({ streamId: append.streamId, ...detail })
    }
    case refusalCode.duplicateCommand: {
      const detail = JSON.parse(error.detail) as {
        readonly streamId: string
        readonly version: number
        readonly positions: ReadonlyArray<string> | null
      }
      return toDuplicate(append.commandId!, {
        stream_id: detail.streamId,
        version: detail.version,
        positions: detail.positions ?? []
      })
    }
    default:
      return undefined
  }
}

/**
 * Builds a statement's JSON argument: a text too long for JavaScript (which throws) fails the append with
 * an `EventStoreError`, like one the server refuses.
 */
const asText = (build: () => string): Effect.Effect<string, EventStoreError> =>
  Effect.try({ try: build, catch: (cause) => new EventStoreError({ operation: "append", cause, transient: false }) })

/** About the characters an append adds to the batch function's argument. */
const appendWeight = (append: PreparedAppend): number => {
  let chars = 200
  // payloads travel as JSON strings: escaping can double them
  for (const e of append.events) chars += 2 * (e.dataJson.length + e.metadataJson.length) + 150
  return chars
}

/** Most characters of JSON per group-commit batch (16 Mi: at most 48 MiB of UTF-8). */
const maxBatchChars = 16 * 1024 * 1024

const compareStreams = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** One append as an element of the batch function's JSON argument (payloads embedded as serialized). */
export const batchItemJson = (append: PreparedAppend, commandTtl: number): string => {
  const expected = append.expectedVersion
  return (
    `{"streamId":${JSON.stringify(append.streamId)},"category":${JSON.stringify(append.category)},` +
    `"hash":${append.streamHash},` +
    `"kind":"${expected._tag}","expected":${expected._tag === "Exact" ? expected.version : 0},` +
    `"events":${eventsJson(append)},"claims":${JSON.stringify(append.claims)},` +
    `"releases":${JSON.stringify(append.releases)},"commandId":${JSON.stringify(append.commandId ?? null)},` +
    `"ttl":${commandTtl}}`
  )
}

/**
 * The events of an append as one JSON array. Payloads go as JSON texts (strings), which the append function
 * stores as `json`: embedded as values, they would pass through `jsonb` and lose their key order.
 */
const eventsJson = (append: PreparedAppend): string =>
  "[" +
  append.events
    .map(
      (e) =>
        `{"eventId":"${e.eventId}","type":${JSON.stringify(e.type)},"schemaVersion":${e.schemaVersion},` +
        `"data":${JSON.stringify(e.dataJson)},"metadata":${e.metadataJson === "{}" ? emptyObjectText : JSON.stringify(e.metadataJson)}}`
    )
    .join(",") +
  "]"

const emptyObjectText = JSON.stringify("{}")
