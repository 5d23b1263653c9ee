/**
 * `npm start` (`node --import tsx examples/bank/main.ts`: one process, so a signal reaches its handler
 * directly): the bank application, served until SIGTERM or SIGINT, which do the same thing: the server
 * drains the requests in flight within `BANK_SHUTDOWN_GRACE` (see `server.ts`), the runners stop between
 * batches, and the process exits 0. On the embedded default it keeps its events in `data/bank.db`; see
 * `app.ts` for the environment variables (PostgreSQL, MySQL/MariaDB, NATS, port, grace period, and the
 * roles that split the application over processes: `cluster.ts`).
 */
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Bank from "./app.js"

/** The startup line: what this process runs, on which store and bus. */
const describe = (config: Bank.BankConfig) =>
  Effect.gen(function* () {
    const store = yield* Bank.storeDescription(config)
    const bus = Option.isSome(config.natsUrl) ? "NATS JetStream (NATS_URL)" : "in-process event bus"
    const parts = config.roles.length === Bank.roles.length ? "" : ` (${config.roles.join(", ")})`
    yield* Effect.log(`bank${parts} on ${store} with the ${bus}`)
  })

const announce = Layer.effectDiscard(
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const config = yield* Bank.config
    const port = server.address._tag === "TcpAddress" ? server.address.port : config.port
    yield* describe(config)
    yield* Effect.log(`console: http://localhost:${port}/   API docs: http://localhost:${port}/docs`)
    yield* Effect.log(
      `try: curl -X POST localhost:${port}/accounts/ada/open -H 'content-type: application/json' -d '{"owner":"Ada","holderId":"cust-ada"}'`
    )
  })
)

const main = Effect.flatMap(Bank.config, (config) =>
  config.roles.includes("api")
    ? Layer.launch(announce.pipe(Layer.provideMerge(Bank.layer(config))))
    : Layer.launch(Layer.effectDiscard(describe(config)).pipe(Layer.provideMerge(Bank.layerWithoutApi(config))))
)

NodeRuntime.runMain(main)
