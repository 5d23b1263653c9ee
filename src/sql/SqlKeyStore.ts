/**
 * The SQL key store (PostgreSQL, SQLite, MySQL/MariaDB): crypto-shredding's data keys in a `keys` table of
 * the event store's database, under its table prefix or schema (see `KeyStore`). Each key is stored wrapped
 * (AES-256-GCM) by the master key the application supplies; a check row sealed with the master key tells a
 * wrong master key at start. Erasing a subject clears its wrapped key and keeps the row as a tombstone, so
 * no new key is made for it. Keys are created with an insert that skips a taken subject, then read back:
 * concurrent writers of a new subject all get the one key that was stored.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "../internal/crypto.js"
import { withSpanIfRecorded } from "../internal/tracing.js"
import { checkSubject, type DataKey, KeyStore, KeyStoreError } from "../KeyStore.js"
import * as Classify from "./classify.js"
import * as Dialect from "./internal/dialect.js"
import { migrate, type TableOptions, type Tables, tables } from "./migrations.js"

/** Options of {@link make}. */
export interface Options extends TableOptions {
  /**
   * The master key wrapping the data keys: 32 bytes as base64 (`openssl rand -base64 32`), typically
   * `Config.redacted("EVENTSOURCING_MASTER_KEY")`. Losing it loses every personal value.
   */
  readonly masterKey: Redacted.Redacted<string>
  /** Create or upgrade the table when the store starts; default true. */
  readonly migrate?: boolean
}

/** Subjects per lookup statement. */
const lookupChunk = 500

/** The reserved subject of the master key's check row (subject ids are never empty). */
const checkRow = ""

interface KeyRow {
  readonly subject: string
  readonly wrapped_key: string | null
}

/**
 * Builds the key store on the `SqlClient` in context. Fails with `WrongMasterKey` if the master key is not
 * 32 bytes of base64, or not the one the stored keys were wrapped with.
 */
export const make = (options: Options): Effect.Effect<KeyStore["Type"], KeyStoreError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const master = Crypto.masterKeyOf(Redacted.value(options.masterKey))
    if (master === undefined) {
      return yield* Effect.fail(
        new KeyStoreError({
          operation: "configure",
          reason: "WrongMasterKey",
          cause: new Error("the master key must be 32 bytes, as base64")
        })
      )
    }
    const configure = (cause: unknown) =>
      new KeyStoreError({ operation: "configure", reason: "Unavailable", cause, transient: false })
    const t = yield* Effect.mapError(tables(options), configure)
    const dialect = yield* Effect.mapError(Dialect.of(sql), configure)
    if (options.migrate !== false) {
      yield* Effect.mapError(
        migrate(t, "keys"),
        (cause) => new KeyStoreError({ operation: "migrate", reason: "Unavailable", cause, transient: cause.transient })
      )
    }
    const failWith = failure
    const wrongMasterKey = (operation: string, subject?: string) =>
      new KeyStoreError({
        operation,
        reason: "WrongMasterKey",
        ...(subject === undefined ? {} : { subject }),
        cause: new Error("a stored key does not open with the master key")
      })

    const read = (subject: string) =>
      sql<KeyRow>`select subject, wrapped_key from ${sql(t.keys)} where subject = ${subject}`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]))
      )
    /** Inserts a row for `subject` unless it has one: a new wrapped key, or a tombstone. */
    const insert = (subject: string, wrapped: string | null) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        dialect.insertNew(
          t.keys,
          { subject, wrapped_key: wrapped, created_at: now, erased_at: wrapped === null ? now : null },
          ["subject"]
        )
      )
    const unwrap = (operation: string, row: KeyRow & { readonly wrapped_key: string }) => {
      const key = Crypto.open(master, row.subject, row.wrapped_key)
      return key === undefined
        ? Effect.fail(wrongMasterKey(operation, row.subject === checkRow ? undefined : row.subject))
        : Effect.succeed(Redacted.make(key))
    }
    const wrap = (subject: string) => Crypto.seal(master, subject, Crypto.newKey())

    // the check row: the first start stores it, every start opens it
    const check = yield* insert(checkRow, wrap(checkRow)).pipe(
      Effect.zipRight(read(checkRow)),
      Effect.mapError(failWith("configure"))
    )
    if (Option.isNone(check) || check.value.wrapped_key === null) {
      return yield* Effect.fail(configure(new Error("the master key's check row is missing")))
    }
    yield* unwrap("configure", check.value as KeyRow & { readonly wrapped_key: string })

    const existing = (subject: string): Effect.Effect<DataKey, KeyStoreError> =>
      Effect.flatMap(Effect.mapError(read(subject), failWith("dataKey", subject)), (row) =>
        Option.isNone(row)
          ? Effect.fail(failWith("dataKey", subject)(new Error("the key was not stored")))
          : row.value.wrapped_key === null
            ? Effect.fail(new KeyStoreError({ operation: "dataKey", reason: "SubjectErased", subject }))
            : unwrap("dataKey", row.value as KeyRow & { readonly wrapped_key: string })
      )

    return KeyStore.of({
      dataKey: (subject) =>
        checked("dataKey", subject, () =>
          Effect.flatMap(Effect.mapError(read(subject), failWith("dataKey", subject)), (row) =>
            Option.isSome(row)
              ? existing(subject)
              : // a concurrent writer may store its key first: then this insert is skipped and both read theirs
                Effect.zipRight(
                  Effect.mapError(insert(subject, wrap(subject)), failWith("dataKey", subject)),
                  existing(subject)
                )
          )
        ).pipe(withSpanIfRecorded("KeyStore.dataKey", { captureStackTrace: false })),
      dataKeys: (subjects) =>
        Effect.gen(function* () {
          const found = new Map<string, DataKey>()
          const wanted = [...new Set(subjects)].filter((s) => s.length > 0)
          for (let i = 0; i < wanted.length; i += lookupChunk) {
            const rows = yield* Effect.mapError(
              sql<KeyRow>`select subject, wrapped_key from ${sql(t.keys)}
                where subject in ${sql.in(wanted.slice(i, i + lookupChunk))}`,
              failWith("dataKeys")
            )
            for (const row of rows) {
              if (row.wrapped_key !== null) {
                found.set(row.subject, yield* unwrap("dataKeys", row as KeyRow & { readonly wrapped_key: string }))
              }
            }
          }
          return found as ReadonlyMap<string, DataKey>
        }).pipe(
          withSpanIfRecorded("KeyStore.dataKeys", {
            attributes: { subjects: subjects.length },
            captureStackTrace: false
          })
        ),
      ...erasureOn(sql, dialect, t, failWith)
    })
  })

/** Options of {@link makeErasure}: where the key store's table is. */
export type ErasureOptions = Pick<Options, "schema" | "tablePrefix">

/** Erasing subjects and asking whether they were, which needs no master key (see {@link makeErasure}). */
export type Erasure = Pick<KeyStore["Type"], "erase" | "isErased">

/**
 * {@link Erasure} on the `SqlClient` in context, without the master key: for operators (the CLI's `keys`
 * commands), who can then erase a subject without being able to read anyone's data. The table must exist
 * (the key store's migration made it).
 */
export const makeErasure = (options: ErasureOptions = {}): Effect.Effect<Erasure, KeyStoreError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const configure = (cause: unknown) =>
      new KeyStoreError({ operation: "configure", reason: "Unavailable", cause, transient: false })
    const t = yield* Effect.mapError(tables(options), configure)
    const dialect = yield* Effect.mapError(Dialect.of(sql), configure)
    return erasureOn(sql, dialect, t, failure)
  })

const failure =
  (operation: string, subject?: string) =>
  (cause: unknown): KeyStoreError =>
    new KeyStoreError({
      operation,
      reason: "Unavailable",
      ...(subject === undefined ? {} : { subject }),
      cause,
      transient: Classify.isTransient(cause)
    })

const checked = <A>(operation: string, subject: string, f: () => Effect.Effect<A, KeyStoreError>) =>
  Option.match(checkSubject(operation, subject), { onNone: f, onSome: Effect.fail })

/** Erasing leaves a tombstone: the row stays, without its key, so that no new key is made for the subject. */
const erasureOn = (
  sql: SqlClient.SqlClient,
  dialect: Dialect.SqlDialect,
  t: Tables,
  failWith: typeof failure
): Erasure => ({
  erase: (subject) =>
    checked("erase", subject, () =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const clear = dialect.matched(
          sql`update ${sql(t.keys)} set wrapped_key = ${null}, erased_at = ${now}
            where subject = ${subject} and wrapped_key is not null`
        )
        // an unknown subject gets a tombstone; a key stored meanwhile is cleared by the second update
        if ((yield* clear) > 0) return
        const inserted = yield* dialect.insertNew(
          t.keys,
          { subject, wrapped_key: null, created_at: now, erased_at: now },
          ["subject"]
        )
        if (!inserted) yield* clear
      }).pipe(Effect.mapError(failWith("erase", subject)))
    ).pipe(Effect.withSpan("KeyStore.erase", { captureStackTrace: false })),
  isErased: (subject) =>
    sql<{
      readonly erased_at: number | string | null
    }>`select erased_at from ${sql(t.keys)} where subject = ${subject}`.pipe(
      Effect.map((rows) => rows.length > 0 && rows[0]!.erased_at !== null),
      Effect.mapError(failWith("isErased", subject))
    )
})

/** The SQL key store as a Layer. */
export const layer = (options: Options): Layer.Layer<KeyStore, KeyStoreError, SqlClient.SqlClient> =>
  Layer.effect(KeyStore, make(options))
