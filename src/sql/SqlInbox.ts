/**
 * The SQL inbox (PostgreSQL, SQLite): claims in a `processed_messages` table in the event store's
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
import { migrate, type TableOptions, tables } from "./migrations.js"

/** Options of {@link make}. */
export interface Options extends TableOptions {
  /** Create or upgrade the tables when the inbox starts; default true. */
  readonly migrate?: boolean
}

/** Builds the inbox on the `SqlClient` in context. */
export const make = (options: Options = {}): Effect.Effect<Inbox["Type"], InboxError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Effect.mapError(tables(options), (cause) => new InboxError({ operation: "configure", cause }))
    if (options.migrate !== false) {
      yield* Effect.mapError(migrate(t), (cause) => new InboxError({ operation: "migrate", cause }))
    }
    const failWith = (operation: string) => (cause: unknown) => new InboxError({ operation, cause })

    const claim = (consumer: string, messageId: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        sql<{ readonly message_id: string }>`
          insert into ${sql(t.processedMessages)} (consumer, message_id, processed_at)
          values (${consumer}, ${messageId}, ${now})
          on conflict do nothing
          returning message_id`.pipe(
          Effect.map((rows) => rows.length > 0),
          Effect.mapError(failWith("claim"))
        )
      )

    return Inbox.of({
      once: (consumer, messageId, effect) =>
        sql
          .withTransaction(
            Effect.flatMap(claim(consumer, messageId), (claimed) =>
              claimed ? Effect.map(effect, Option.some) : Effect.succeed(Option.none())
            )
          )
          .pipe(Effect.catchTag("SqlError", (error) => Effect.fail(failWith("transaction")(error)))),
      prune: (olderThan) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          sql<{ readonly message_id: string }>`
            delete from ${sql(t.processedMessages)} where processed_at < ${now - Duration.toMillis(olderThan)}
            returning message_id`.pipe(
            Effect.map((rows) => rows.length),
            Effect.mapError(failWith("prune"))
          )
        )
    })
  })

/** The SQL inbox as a Layer. */
export const layer = (options: Options = {}): Layer.Layer<Inbox, InboxError, SqlClient.SqlClient> =>
  Layer.effect(Inbox, make(options))
