/**
 * The SQL inbox (PostgreSQL, SQLite, MySQL/MariaDB): claims in a `processed_messages` table in the event store's
 * database and under its table prefix or schema, inside the `SqlClient` transaction, so the handler's
 * writes to that database and the claim commit together (see `Inbox`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Inbox, InboxError } from "../Inbox.js"
import * as Classify from "./classify.js"
import * as Dialect from "./internal/dialect.js"
import { migrate, type TableOptions, tables } from "./migrations.js"
import { withTransaction } from "./transaction.js"

/** Options of {@link make}. */
export interface Options extends TableOptions {
  /** Create or upgrade the tables when the inbox starts; default true. */
  readonly migrate?: boolean
}

/** Longest consumer name and message id (the key columns' size). */
export const maxIdLength = 255

/** Builds the inbox on the `SqlClient` in context. */
export const make = (options: Options = {}): Effect.Effect<Inbox["Type"], InboxError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Effect.mapError(
      tables(options),
      (cause) => new InboxError({ operation: "configure", cause, transient: false })
    )
    const dialect = yield* Effect.mapError(
      Dialect.of(sql),
      (cause) => new InboxError({ operation: "configure", cause, transient: false })
    )
    if (options.migrate !== false) {
      yield* Effect.mapError(
        migrate(t, "inbox"),
        (cause) => new InboxError({ operation: "migrate", cause, transient: cause.transient })
      )
    }
    const failWith = (operation: string) => (cause: unknown) =>
      new InboxError({ operation, cause, transient: Classify.isTransient(cause) })

    /**
     * Whether the claim is new; a concurrent claim of the same message waits for this one's outcome. The
     * ids' lengths are checked first: MySQL's claim would store a longer one cut (see `Dialect.insertNew`).
     */
    const claim = (consumer: string, messageId: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        dialect
          .insertNew(t.processedMessages, { consumer, message_id: messageId, processed_at: now }, [
            "consumer",
            "message_id"
          ])
          .pipe(Effect.mapError(failWith("claim")))
      )

    return Inbox.of({
      once: (consumer, messageId, effect) =>
        consumer.length > maxIdLength || messageId.length > maxIdLength
          ? Effect.fail(failWith("claim")(new Error(`consumer and message ids are at most ${maxIdLength} characters`)))
          : withTransaction(sql)(
              Effect.flatMap(claim(consumer, messageId), (claimed) =>
                claimed ? Effect.map(effect, Option.some) : Effect.succeed(Option.none())
              )
            ).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(failWith("transaction")(error)))),
      prune: (olderThan) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const before = now - Duration.toMillis(olderThan)
          return dialect
            .matched(sql`delete from ${sql(t.processedMessages)} where processed_at < ${before}`)
            .pipe(Effect.mapError(failWith("prune")))
        })
    })
  })

/** The SQL inbox as a Layer. */
export const layer = (options: Options = {}): Layer.Layer<Inbox, InboxError, SqlClient.SqlClient> =>
  Layer.effect(Inbox, make(options))
