import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { KeyStore, Personal } from "effect-eventsourcing"
import { SqlEventStore, SqlKeyStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"

// `email` is personal data of the subject named by `userId`; once erased it reads as null
export const UserRegistered = Schema.TaggedStruct("UserRegistered", {
  userId: Schema.String,
  email: Personal.field(Schema.NullOr(Schema.String), { subject: "userId", erased: null }),
  plan: Schema.String
})

// the keys live beside the events, wrapped by a master key that never leaves the configuration
export const AppLive = Layer.mergeAll(
  SqlEventStore.layer(),
  Layer.unwrapEffect(Effect.map(Config.redacted("MASTER_KEY"), (masterKey) => SqlKeyStore.layer({ masterKey })))
).pipe(Layer.provideMerge(Sqlite.layer({ filename: "app.db" })))

// an erasure request: from now on every read of this user's personal fields gives `null`
export const forget = (userId: string) => Effect.flatMap(KeyStore.KeyStore, (keys) => keys.erase(userId))
