/**
 * Crypto-shredding's keys: `keys erase <subject>` deletes a data subject's key, so that its personal fields
 * read as erased everywhere from then on (see `KeyStore`, `Personal`), and `keys status <subject>` says
 * whether it was. Neither needs the master key: an operator can erase without being able to read.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import * as SqlKeyStore from "../sql/SqlKeyStore.js"
import * as Connection from "./internal/connection.js"
import { CliError, json, print } from "./internal/output.js"

const subject = Args.text({ name: "subject" }).pipe(Args.withDescription("the data subject's id"))

const erasure = (connection: Connection.Connection) =>
  Effect.flatMap(Connection.tableOptions(connection), (options) =>
    Effect.mapError(SqlKeyStore.makeErasure(options), (error) => new CliError({ message: error.message }))
  )

const failed = (error: { readonly message: string }) => new CliError({ message: error.message })

/** `keys erase <subject>`: deletes the subject's key, for good (idempotent). */
export const erase = Command.make("erase", { ...Connection.options, json, subject }, (options) =>
  Connection.withDatabase(
    options,
    { create: false },
    Effect.gen(function* () {
      const keys = yield* erasure(options)
      yield* Effect.mapError(keys.erase(options.subject), failed)
      yield* print(options.json, { subject: options.subject, erased: true }, (r) => `erased ${r.subject}`)
    })
  )
).pipe(Command.withDescription("erase a data subject: delete its key, its personal fields read as erased"))

/** `keys status <subject>`: whether the subject was erased. */
export const status = Command.make("status", { ...Connection.options, json, subject }, (options) =>
  Connection.withDatabase(
    options,
    { create: false },
    Effect.gen(function* () {
      const keys = yield* erasure(options)
      const erased = yield* Effect.mapError(keys.isErased(options.subject), failed)
      yield* print(options.json, { subject: options.subject, erased }, (r) =>
        r.erased ? `${r.subject} is erased` : `${r.subject} is not erased`
      )
    })
  )
).pipe(Command.withDescription("whether a data subject was erased"))

export const command = Command.make("keys").pipe(
  Command.withDescription("crypto-shredding: erase data subjects"),
  Command.withSubcommands([erase, status])
)
