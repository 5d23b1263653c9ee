/**
 * The bank application, wired with Layers: stores, the command and query buses, the runners (two projections, the
 * transfer saga, the outbox relay, the alerts consumer; each a fiber in the application's scope) and the
 * HTTP server.
 *
 * Configuration (environment):
 * - `DATABASE_URL`: PostgreSQL (`postgres://...`, woken by NOTIFY) or MySQL/MariaDB (`mysql://...` or
 *   `mariadb://...`; the startup line names the server the database says it is);
 *   otherwise SQLite in `BANK_DB` (default `data/bank.db`). Runners in one process wake each other.
 * - `NATS_URL`: the outbox relays to JetStream (stream `BANK_EVENTS`) and the alerts consumer is a durable
 *   JetStream consumer; otherwise both use the in-process event bus.
 * - `PORT` (default 3000); `BANK_ADMIN_TOKEN` enables the admin endpoints (projection rebuilds, dead
 *   letters); `BANK_SAMPLE_INTERVAL` (default `2 seconds`): how often the console samples the runners' lag.
 * - `BANK_SHUTDOWN_GRACE` (default `10 seconds`; `500 millis`, `1 minute`...): at SIGTERM/SIGINT the server
 *   stops accepting and gives the requests in flight this long to be answered, then closes the rest
 *   (see `server.ts`); then the runners stop between batches.
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` (and the other `OTEL_*` variables): spans and metrics go to that
 *   OpenTelemetry collector over OTLP/HTTP.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { CommandBus, CommandMiddleware, EventBus, Outbox, Projection, Saga, Wakeup } from "effect-eventsourcing"
import { EventBrowserApi } from "effect-eventsourcing/http"
import { Nats, NatsEventBus, NatsPublisher } from "effect-eventsourcing/nats"
import { Otel } from "effect-eventsourcing/observability"
import { Mysql } from "effect-eventsourcing/mysql"
import { Postgres } from "effect-eventsourcing/pg"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { SqlCheckpointStore, SqlEventStore, SqlInbox, SqlSagaStore } from "effect-eventsourcing/sql"
import { Account, AccountState } from "./Account.js"
import * as Alerts from "./alerts.js"
import { AccountCommands, accountHandlers } from "./commands.js"
import { BankApi, BankHandlers, guard } from "./http.js"
import * as Queries from "./queries.js"
import * as ReadModels from "./readModels.js"
import * as Server from "./server.js"
import { Transfer } from "./Transfer.js"

export interface BankConfig {
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly sqliteFile: string
  readonly natsUrl: Option.Option<string>
  readonly port: number
  readonly adminToken: Option.Option<Redacted.Redacted>
  /** How often the console samples the runners' lag and throughput. */
  readonly sampleInterval: Duration.Duration
  readonly otlpEndpoint: Option.Option<string>
  /** How long requests in flight at shutdown may take to be answered. */
  readonly shutdownGrace: Duration.Duration
}

/** An optional setting; set but empty counts as unset. */
const optional = <A>(config: Config.Config<A>, isEmpty: (a: A) => boolean) =>
  Config.option(config).pipe(Config.map(Option.filter((a) => !isEmpty(a))))

export const config: Config.Config<BankConfig> = Config.all({
  databaseUrl: optional(Config.redacted("DATABASE_URL"), (url) => Redacted.value(url) === ""),
  sqliteFile: Config.withDefault(Config.string("BANK_DB"), path.join("data", "bank.db")),
  natsUrl: optional(Config.string("NATS_URL"), (url) => url === ""),
  // 0 picks a free port (the demo)
  port: Config.withDefault(
    Config.integer("PORT").pipe(
      Config.validate({ message: "PORT must be 0 to 65535", validation: (p) => p >= 0 && p <= 65535 })
    ),
    3000
  ),
  adminToken: optional(Config.redacted("BANK_ADMIN_TOKEN"), (token) => Redacted.value(token) === ""),
  sampleInterval: Config.withDefault(Config.duration("BANK_SAMPLE_INTERVAL"), Duration.seconds(2)),
  otlpEndpoint: optional(Config.string("OTEL_EXPORTER_OTLP_ENDPOINT"), (url) => url === ""),
  shutdownGrace: Config.withDefault(Config.duration("BANK_SHUTDOWN_GRACE"), Duration.seconds(10))
})

/** Whether `DATABASE_URL` names MySQL or MariaDB (`mysql://...`, `mariadb://...`) rather than PostgreSQL. */
const isMysql = (url: Redacted.Redacted) => /^(mysql|mariadb):/.test(Redacted.value(url))

/**
 * Which backend the application runs on, for its startup line: SQLite and its file, PostgreSQL, or, for a
 * `mysql://` URL, MariaDB or MySQL as the server says (`select version()`).
 */
export const storeDescription = (config: BankConfig): Effect.Effect<string, never, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    if (Option.isNone(config.databaseUrl)) return `SQLite ${config.sqliteFile}`
    if (!isMysql(config.databaseUrl.value)) return "PostgreSQL (DATABASE_URL)"
    const sql = yield* SqlClient.SqlClient
    const version = yield* sql<{ readonly version: string }>`select version() as version`.pipe(
      Effect.map((rows) => rows[0]?.version ?? ""),
      Effect.orElseSucceed(() => "")
    )
    const server = /mariadb/i.test(version) ? "MariaDB" : version === "" ? "MySQL/MariaDB" : "MySQL"
    const number = /^\d+(\.\d+)*/.exec(version)?.[0]
    return `${server}${number === undefined ? "" : ` ${number}`} (DATABASE_URL)`
  })

/** The database, its stores and the wake-up hints. */
const stores = (config: BankConfig) => {
  const services = Layer.mergeAll(
    SqlEventStore.layer(),
    SqlCheckpointStore.layer(),
    SqlSagaStore.layer(),
    SqlInbox.layer(),
    Projection.layerRegistry,
    Layer.effectDiscard(Effect.zipRight(ReadModels.createTables, Alerts.createTable))
  )
  if (Option.isSome(config.databaseUrl) && isMysql(config.databaseUrl.value)) {
    return services.pipe(
      Layer.provideMerge(Wakeup.layer),
      Layer.provideMerge(Mysql.layer({ url: Redacted.value(config.databaseUrl.value).replace(/^mariadb:/, "mysql:") }))
    )
  }
  if (Option.isSome(config.databaseUrl)) {
    return services.pipe(
      Layer.provideMerge(Postgres.layerWakeup()),
      Layer.provideMerge(Postgres.layer({ url: config.databaseUrl.value }))
    )
  }
  fs.mkdirSync(path.dirname(config.sqliteFile), { recursive: true })
  return services.pipe(
    Layer.provideMerge(Wakeup.layer),
    Layer.provideMerge(Sqlite.layer({ filename: config.sqliteFile }))
  )
}

/** Where the outbox publishes and the alerts consumer subscribes. */
const messaging = (config: BankConfig) =>
  Option.match(config.natsUrl, {
    // the alerts group is declared: the relay waits for it while the application starts
    onNone: () => EventBus.layerMemory({ groups: [Alerts.LargeWithdrawals.group] }),
    onSome: (servers) => {
      const publisher = NatsPublisher.layer({ stream: "BANK_EVENTS", subjectPrefix: "bank" })
      // the publisher creates the stream the bus's consumers read
      return Layer.mergeAll(
        publisher,
        Layer.provide(NatsEventBus.layer({ stream: "BANK_EVENTS", subjectPrefix: "bank" }), publisher)
      ).pipe(Layer.provideMerge(Nats.layer({ servers, name: "bank" })))
    }
  })

const commandBus = CommandBus.layer({
  groups: [AccountCommands],
  middleware: [CommandMiddleware.tracing, CommandMiddleware.recoverDefects, CommandMiddleware.timeout("10 seconds")]
}).pipe(Layer.provide(accountHandlers()))

/** The account queries, answered from the read models (a `readAfter` waits for the two projections). */
const queryBus = Queries.queryBus.pipe(Layer.provide(Queries.accountQueryHandlers))

/** The long-running work, each a fiber in the application's scope. */
const runners = Layer.mergeAll(
  Projection.layer(ReadModels.Balances),
  Projection.layer(ReadModels.History),
  Saga.layer(Transfer),
  Outbox.relayLayer(),
  Alerts.layer
)

/** The API, served with a bounded drain at shutdown (`server.ts`). */
const http = (config: BankConfig) =>
  Server.drainOnShutdown(config.shutdownGrace).pipe(Layer.provideMerge(routes(config)))

const routes = (config: BankConfig) =>
  HttpApiBuilder.serve(guard).pipe(
    Layer.provide(Layer.merge(HttpApiBuilder.middlewareOpenApi(), EventBrowserApi.layerDocs)),
    Layer.provide(HttpApiBuilder.api(BankApi)),
    Layer.provide(BankHandlers),
    Layer.provide(
      EventBrowserApi.handlers({
        sagas: [Transfer],
        projections: [ReadModels.Balances, ReadModels.History],
        deciders: [EventBrowserApi.decider(Account, { state: AccountState })],
        sampleInterval: config.sampleInterval,
        ...Option.match(config.adminToken, { onNone: () => ({}), onSome: (adminToken) => ({ adminToken }) })
      })
    ),
    Layer.provideMerge(Server.layer({ port: config.port }))
  )

/** OpenTelemetry export when a collector is configured. */
const telemetry = (config: BankConfig) =>
  Option.isSome(config.otlpEndpoint)
    ? Otel.layerOtlp({ serviceName: "bank" }).pipe(Layer.provide(FetchHttpClient.layer))
    : Layer.empty

/** The whole application for a configuration. */
export const layer = (config: BankConfig) =>
  Layer.mergeAll(http(config), runners).pipe(
    Layer.provide(telemetry(config)),
    Layer.provideMerge(commandBus),
    Layer.provideMerge(queryBus),
    Layer.provideMerge(messaging(config)),
    Layer.provideMerge(stores(config))
  )
