import { assert, describe, it } from "@effect/vitest"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import pg from "pg"
import { throwawayNats, throwawayPostgres } from "./servers.js"

const query = (url: string, sql: string) =>
  Effect.acquireUseRelease(
    Effect.tryPromise(async () => {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.tryPromise(() => client.query<Record<string, unknown>>(sql)),
    (client) => Effect.promise(() => client.end().catch(() => {}))
  )

const jetStreamMessages = (url: string, stream: string) =>
  Effect.acquireUseRelease(
    Effect.tryPromise(() => connect({ servers: url, reconnect: false })),
    (nc) =>
      Effect.tryPromise(async () => {
        const jsm = await jetstreamManager(nc)
        return (await jsm.streams.info(stream)).state.messages
      }),
    (nc) => Effect.promise(() => nc.close())
  )

describe("throwaway servers", () => {
  it.scoped(
    "PostgreSQL starts, is killed (connections fail) and restarts with its committed data",
    () =>
      Effect.gen(function* () {
        const server = yield* throwawayPostgres
        assert.notStrictEqual(server.port, 5432)
        yield* query(server.url, "create table t (n int); insert into t values (1)")
        yield* server.kill
        const failure = yield* Effect.flip(query(server.url, "select 1"))
        assert.instanceOf(failure.error, Error)
        yield* server.start
        const result = yield* query(server.url, "select n from t")
        assert.deepStrictEqual(result.rows, [{ n: 1 }])
      }),
    120_000
  )

  it.scoped(
    "nats-server starts, is killed (connections fail) and restarts with its JetStream data",
    () =>
      Effect.gen(function* () {
        const server = yield* throwawayNats
        assert.notStrictEqual(server.port, 4222)
        yield* Effect.acquireUseRelease(
          Effect.promise(() => connect({ servers: server.url })),
          (nc) =>
            Effect.promise(async () => {
              const jsm = await jetstreamManager(nc)
              await jsm.streams.add({ name: "probe", subjects: ["probe.>"] })
              await jsm.jetstream().publish("probe.a", "hello")
            }),
          (nc) => Effect.promise(() => nc.close())
        )
        yield* server.kill
        yield* Effect.flip(jetStreamMessages(server.url, "probe"))
        yield* server.start
        assert.strictEqual(yield* jetStreamMessages(server.url, "probe"), 1)
      }),
    120_000
  )
})
