/**
 * The common SQLite append (no command id, no unique values, its expected version met) run synchronously on
 * the connection, inside the transaction its group commit holds: better-sqlite3 is synchronous, so its
 * statements need no Effect each (they take a third of the time they take with Effects between them, the
 * caches staying warm). Any other append, or one that meets what the serial append sorts out (a version not
 * met; an event id stored already), is undone and handed to the serial append (`sql/internal/serialAppend`),
 * which gives the same results: the serial append is the reference. A group is written without savepoints
 * first (see {@link NeedsSavepoints}).
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Event from "../../Event.js"
import { type AppendResult, StreamDeleted } from "../../EventStore.js"
import type { PreparedAppend } from "../../internal/appendPreparation.js"
import { isDuplicateKey } from "../../sql/classify.js"
import type * as HotPath from "../../sql/HotPath.js"
import * as Compiled from "../../sql/internal/compiled.js"
import { deletedHard } from "../../sql/internal/ddl.js"
import type { Tables } from "../../sql/migrations.js"

/** What the fast append is built from. */
export interface Options {
  readonly sql: SqlClient.SqlClient
  readonly synchronous: HotPath.SyncStatements
  readonly tables: Tables
  /** The events INSERT of an append at `current` (its text and parameters), recorded at `now`. */
  readonly insert: (
    append: PreparedAppend,
    current: number,
    now: number
  ) => { readonly text: string; readonly params: ReadonlyArray<unknown> }
  /** The positions of the rows an INSERT stored, from the driver's answer; undefined if it stored another count. */
  readonly positions: (
    inserted: { readonly changes: number; readonly lastInsertRowid: number | bigint },
    count: number
  ) => ReadonlyArray<bigint> | undefined
}

/** Handed to the serial append. */
const serialTurn = Symbol("serial")

/**
 * The append wrote what only a savepoint undoes alone: write its group again with savepoints. Without them
 * (two statements less per append), an append refused before it writes needs none, nor does an insert
 * refused for a duplicate key (SQLite backs a failed statement out and the transaction goes on); anything
 * else failing, or an insert storing an unexpected count, answers this, and the group is rolled back and
 * written again with a savepoint per append, so that the append is undone alone.
 */
export class NeedsSavepoints {
  readonly _tag = "NeedsSavepoints"
}

const needsSavepoints = new NeedsSavepoints()

/** Whether an append's exit says its group needs savepoints. */
export const isNeedsSavepoints = (error: unknown): error is NeedsSavepoints => error instanceof NeedsSavepoints

/** The savepoint of one append in its group's transaction. */
const savepoint = "ees_append"

/**
 * Builds the append: given an append and the serial append, it runs the former when it can and the latter
 * otherwise. To be run inside the hot path's transaction only (it holds the connection).
 */
export const make = (options: Options) => {
  const { sql, synchronous: run, tables: t } = options
  const texts = {
    stream: Compiled.text(sql`select version, deleted from ${sql(t.streams)} where stream_id = ${""}`, 1),
    streamVersion: Compiled.text(
      sql`insert into ${sql(t.streams)} (stream_id, version) values (${""}, ${0})
        on conflict (stream_id) do update set version = excluded.version`,
      2
    )
  }
  /** Undoes the savepoint's work; a failure here (the connection broke) leaves the statement's own to report. */
  const rollBack = () =>
    Either.try(() => {
      run.changes(`ROLLBACK TO ${savepoint}`, [])
      run.changes(`RELEASE ${savepoint}`, [])
    })

  /**
   * The append's statements, in a savepoint if `progress.savepoints`; a driver error is thrown (see
   * {@link attempt}). `progress.inserted` says whether its insert stands.
   */
  const statements = (
    append: PreparedAppend,
    now: number,
    progress: Progress
  ): Effect.Effect<AppendResult, StreamDeleted | NeedsSavepoints> | typeof serialTurn => {
    const savepoints = progress.savepoints
    // nothing written yet: only a savepoint to end
    const undo = () => (savepoints ? rollBack() : undefined)
    if (savepoints) run.changes(`SAVEPOINT ${savepoint}`, [])
    const [stream] = run.rows(texts.stream, [append.streamId]) as ReadonlyArray<{
      readonly version: number
      readonly deleted: number
    }>
    const current = stream?.version ?? 0
    if (stream !== undefined && stream.deleted !== 0) {
      undo()
      return Effect.fail(new StreamDeleted({ streamId: append.streamId, hard: stream.deleted === deletedHard }))
    }
    if (!Event.satisfies(append.expectedVersion, current)) {
      undo()
      return serialTurn
    }
    if (append.events.length === 0) {
      undo()
      return Effect.succeed({ streamId: append.streamId, version: current, positions: [] })
    }
    const { params, text } = options.insert(append, current, now)
    const inserted = run.changes(text, params)
    progress.inserted = true
    const positions = options.positions(inserted, append.events.length)
    if (positions === undefined) {
      if (!savepoints) return Effect.fail(needsSavepoints)
      rollBack()
      return Effect.die(new Error(`an events insert of ${append.events.length} rows changed ${inserted.changes}`))
    }
    const version = current + append.events.length
    run.changes(texts.streamVersion, [append.streamId, version])
    if (savepoints) run.changes(`RELEASE ${savepoint}`, [])
    return Effect.succeed({ streamId: append.streamId, version, positions })
  }

  /**
   * The append's statements, undone if one fails: a duplicate key (an event id stored in the stream
   * already: a retried append) is the serial append's to resolve; any other failure is the append's.
   */
  const attempt = (
    append: PreparedAppend,
    now: number,
    savepoints: boolean
  ): Effect.Effect<AppendResult, StreamDeleted | SqlError | NeedsSavepoints> | typeof serialTurn => {
    const progress: Progress = { savepoints, inserted: false }
    return Either.getOrElse(
      Either.try(() => statements(append, now, progress)),
      (cause) => {
        if (savepoints) rollBack()
        // without a savepoint, only an insert refused for a duplicate key is sorted out here (SQLite backed
        // the statement out); any other failure is the savepoint pass's, the reference for failures
        else if (progress.inserted || !isDuplicateKey(cause)) return Effect.fail(needsSavepoints)
        return isDuplicateKey(cause)
          ? serialTurn
          : Effect.fail(new SqlError({ cause, message: "Failed to execute statement" }))
      }
    )
  }

  return <E, R>(
    append: PreparedAppend,
    serial: (append: PreparedAppend) => Effect.Effect<AppendResult, E, R>,
    savepoints: boolean
  ): Effect.Effect<AppendResult, E | StreamDeleted | SqlError | NeedsSavepoints, R> =>
    append.commandId !== undefined || append.claims.length > 0 || append.releases.length > 0
      ? serial(append)
      : Effect.flatMap(
          Clock.currentTimeMillis,
          (now): Effect.Effect<AppendResult, E | StreamDeleted | SqlError | NeedsSavepoints, R> => {
            const outcome = attempt(append, now, savepoints)
            return outcome === serialTurn ? serial(append) : outcome
          }
        )
}

/** How far an append's statements went, and whether they run in a savepoint. */
interface Progress {
  readonly savepoints: boolean
  inserted: boolean
}
