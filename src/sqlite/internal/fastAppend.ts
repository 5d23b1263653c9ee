/**
 * The common SQLite append (no command id, no unique values, its expected version met) run synchronously on
 * the connection, inside the transaction its group commit holds: better-sqlite3 is synchronous, so its
 * statements need no Effect each (they take a third of the time they take with Effects between them, the
 * caches staying warm). Any other append, or one that meets what the serial append sorts out (a version not
 * met; an event id stored already), is undone and handed to the serial append (`sql/internal/serialAppend`),
 * which gives the same results: the serial append is the reference. A group is written without savepoints
 * first (see {@link NeedsSavepoints}), and, when all its appends are common ones, as one synchronous
 * transaction: one Effect for the group (`group`).
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
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

/** Whether an error is {@link NeedsSavepoints}. */
export const isNeedsSavepoints = (error: unknown): error is NeedsSavepoints => error instanceof NeedsSavepoints

/** Whether an append's exit says its group needs savepoints. */
export const isNeedsSavepointsExit = (exit: Exit.Exit<unknown, unknown>): boolean =>
  Exit.isFailure(exit) && Option.exists(Cause.failureOption(exit.cause), isNeedsSavepoints)

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
    ),
    // the stream row moved on if the stream is where the append expects it (see `advance`)
    create: Compiled.text(
      sql`insert into ${sql(t.streams)} (stream_id, version) values (${""}, ${0})
        on conflict (stream_id) do update set version = excluded.version where version = 0 and deleted = 0`,
      2
    ),
    advanceFrom: Compiled.text(
      sql`update ${sql(t.streams)} set version = ${0} where stream_id = ${""} and version = ${0} and deleted = 0`,
      3
    ),
    advanceAny: Compiled.text(
      sql`insert into ${sql(t.streams)} (stream_id, version) values (${""}, ${0})
        on conflict (stream_id) do update set version = version + excluded.version where deleted = 0
        returning version`,
      2
    )
  }
  /**
   * Moves the stream row past the append's events in one statement (rather than reading it, then writing it),
   * if the stream is where the append expects it and not deleted: the version it was at. `undefined` with
   * nothing written otherwise, and for `StreamExists`: the append then reads the stream row as before.
   */
  const advance = (append: PreparedAppend): number | undefined => {
    const count = append.events.length
    const expected = append.expectedVersion
    switch (expected._tag) {
      case "NoStream":
      case "Exact": {
        const from = expected._tag === "Exact" ? expected.version : 0
        const moved =
          from === 0
            ? run.changes(texts.create, [append.streamId, count])
            : run.changes(texts.advanceFrom, [from + count, append.streamId, from])
        return moved.changes === 1 ? from : undefined
      }
      case "Any": {
        const [row] = run.rows(texts.advanceAny, [append.streamId, count]) as ReadonlyArray<{
          readonly version: number
        }>
        return row === undefined ? undefined : row.version - count
      }
      case "StreamExists":
        return undefined
    }
  }
  /** Undoes the savepoint's work; a failure here (the connection broke) leaves the statement's own to report. */
  const rollBack = () =>
    Either.try(() => {
      run.changes(`ROLLBACK TO ${savepoint}`, [])
      run.changes(`RELEASE ${savepoint}`, [])
    })

  /**
   * The append's statements, in a savepoint if `progress.savepoints`; a driver error is thrown (see
   * {@link attempt}). `progress.wrote` says whether it wrote anything.
   */
  const statements = (
    append: PreparedAppend,
    now: number,
    progress: Progress
  ): Exit.Exit<AppendResult, StreamDeleted | NeedsSavepoints> | typeof serialTurn => {
    const savepoints = progress.savepoints
    // nothing written yet: only a savepoint to end
    const undo = () => (savepoints ? rollBack() : undefined)
    if (savepoints) run.changes(`SAVEPOINT ${savepoint}`, [])
    if (append.events.length > 0) {
      const from = advance(append)
      if (from !== undefined) {
        progress.wrote = true
        return inserted(append, from, now, progress, false)
      }
    }
    const [stream] = run.rows(texts.stream, [append.streamId]) as ReadonlyArray<{
      readonly version: number
      readonly deleted: number
    }>
    const current = stream?.version ?? 0
    if (stream !== undefined && stream.deleted !== 0) {
      undo()
      return Exit.fail(new StreamDeleted({ streamId: append.streamId, hard: stream.deleted === deletedHard }))
    }
    if (!Event.satisfies(append.expectedVersion, current)) {
      undo()
      return serialTurn
    }
    if (append.events.length === 0) {
      undo()
      return Exit.succeed({ streamId: append.streamId, version: current, positions: [] })
    }
    return inserted(append, current, now, progress, true)
  }

  /**
   * The append's events inserted after `current`, then its stream row written if `streamRow` (else `advance`
   * wrote it already); the savepoint ended.
   */
  const inserted = (
    append: PreparedAppend,
    current: number,
    now: number,
    progress: Progress,
    streamRow: boolean
  ): Exit.Exit<AppendResult, NeedsSavepoints> => {
    const { params, text } = options.insert(append, current, now)
    const changed = run.changes(text, params)
    progress.wrote = true
    const positions = options.positions(changed, append.events.length)
    if (positions === undefined) {
      if (!progress.savepoints) return Exit.fail(needsSavepoints)
      rollBack()
      return Exit.die(new Error(`an events insert of ${append.events.length} rows changed ${changed.changes}`))
    }
    const version = current + append.events.length
    if (streamRow) run.changes(texts.streamVersion, [append.streamId, version])
    if (progress.savepoints) run.changes(`RELEASE ${savepoint}`, [])
    return Exit.succeed({ streamId: append.streamId, version, positions })
  }

  /**
   * The append's statements, undone if one fails: a duplicate key (an event id stored in the stream
   * already: a retried append) is the serial append's to resolve; any other failure is the append's.
   */
  const attempt = (
    append: PreparedAppend,
    now: number,
    savepoints: boolean
  ): Exit.Exit<AppendResult, StreamDeleted | SqlError | NeedsSavepoints> | typeof serialTurn => {
    const progress: Progress = { savepoints, wrote: false }
    return Either.getOrElse(
      Either.try(() => statements(append, now, progress)),
      (cause) => {
        if (savepoints) rollBack()
        // without a savepoint, only an insert refused for a duplicate key is sorted out here (SQLite backed
        // the statement out); any other failure is the savepoint pass's, the reference for failures
        else if (progress.wrote || !isDuplicateKey(cause)) return Exit.fail(needsSavepoints)
        return isDuplicateKey(cause)
          ? serialTurn
          : Exit.fail(new SqlError({ cause, message: "Failed to execute statement" }))
      }
    )
  }

  /** Whether `append` may take the fast way: no command id, no unique values. */
  const eligible = (append: PreparedAppend) =>
    append.commandId === undefined && append.claims.length === 0 && append.releases.length === 0

  /**
   * Runs `append` the fast way if it can, in the transaction its caller holds, and the serial append
   * otherwise.
   */
  const fastOrSerial = <E, R>(
    append: PreparedAppend,
    serial: (append: PreparedAppend) => Effect.Effect<AppendResult, E, R>,
    savepoints: boolean
  ): Effect.Effect<AppendResult, E | StreamDeleted | SqlError | NeedsSavepoints, R> =>
    eligible(append)
      ? Effect.flatMap(
          Clock.currentTimeMillis,
          (now): Effect.Effect<AppendResult, E | StreamDeleted | SqlError | NeedsSavepoints, R> => {
            const outcome = attempt(append, now, savepoints)
            return outcome === serialTurn ? serial(append) : outcome
          }
        )
      : serial(append)

  /**
   * A group of appends as one synchronous transaction of its own, when every one of them takes the fast way
   * without a savepoint: their exits, in order. `undefined` (nothing written) when one of them cannot; the
   * caller then writes the group its other way. One Effect for the whole group, none per append or statement.
   */
  const group = (
    appends: ReadonlyArray<PreparedAppend>
  ): Effect.Effect<ReadonlyArray<Exit.Exit<AppendResult, StreamDeleted | SqlError>> | undefined, SqlError> =>
    appends.every(eligible)
      ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
          run.transaction(() => {
            const exits: Array<Exit.Exit<AppendResult, StreamDeleted | SqlError>> = []
            for (const append of appends) {
              const outcome = attempt(append, now, false)
              if (outcome === serialTurn || isNeedsSavepointsExit(outcome)) return undefined
              exits.push(outcome as Exit.Exit<AppendResult, StreamDeleted | SqlError>)
            }
            return exits
          })
        )
      : Effect.succeed(undefined)

  return { append: fastOrSerial, group }
}

/** How far an append's statements went, and whether they run in a savepoint. */
interface Progress {
  readonly savepoints: boolean
  /** Whether it wrote anything (its stream row or its events): only a savepoint undoes that alone. */
  wrote: boolean
}
