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
 *   JetStream consumer; otherwise both use the in-process event bus. Several seed servers of a cluster are
 *   separated by commas; `NATS_REPLICAS` (default 1) replicates the streams the bank creates (3 on a
 *   3-node cluster).
 * - `BANK_ROLES` (default `api,projections,relay`): what this process runs, so that the application can be
 *   split over processes sharing one database: `api` (HTTP and the command bus), `projections` (the read
 *   models and the transfer saga), `relay` (the outbox relay and the alerts consumer, which need the same
 *   process when the bus is in process). See `cluster.ts`.
 * - `BANK_MASTER_KEY`: the master key wrapping the account holders' data keys (32 bytes as base64,
 *   `openssl rand -base64 32`; read as a `Redacted` value, never logged). Without it the key is read from
 *   `BANK_MASTER_KEY_FILE` (default `bank.key` beside the SQLite file, `data/bank.key`), which is made with
 *   a fresh random key (mode 0600) on the first start: `npm start` works out of the box and no key is
 *   written in the source. Losing the key loses every holder's personal data; in production set
 *   `BANK_MASTER_KEY` from your secret store.
 * - `PORT` (default 3000); `BANK_ADMIN_TOKEN` enables the admin endpoints (projection rebuilds, dead
 *   letters); `BANK_SAMPLE_INTERVAL` (default `2 seconds`): how often the console samples the runners' lag.
 * - `BANK_SHUTDOWN_GRACE` (default `10 seconds`; `500 millis`, `1 minute`...): at SIGTERM/SIGINT the server
 *   stops accepting and gives the requests in flight this long to be answered, then closes the rest
 *   (see `server.ts`); then the runners stop between batches.
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` (and the other `OTEL_*` variables): spans and metrics go to that
 *   OpenTelemetry collector over OTLP/HTTP.
 */
import { randomBytes } from "node:crypto"
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
import { SqlCheckpointStore, SqlEventStore, SqlInbox, SqlKeyStore, SqlSagaStore } from "effect-eventsourcing/sql"
import { Account, AccountState } from "./Account.js"
import * as Alerts from "./alerts.js"
import { AccountCommands, accountHandlers } from "./commands.js"
import { BankApi, BankHandlers, guard } from "./http.js"
import * as Queries from "./queries.js"
import * as ReadModels from "./readModels.js"
import * as Server from "./server.js"
import { Transfer } from "./Transfer.js"

/** A part of the application a process runs (`BANK_ROLES`). */
export type Role = "api" | "projections" | "relay"

export const roles: ReadonlyArray<Role> = ["api", "projections", "relay"]

export interface BankConfig {
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly sqliteFile: string
  /** The NATS seed servers (`NATS_URL`, comma-separated); none: the in-process bus. */
  readonly natsUrl: Option.Option<ReadonlyArray<string>>
  /** Replicas of the bank's streams when they are created (`NATS_REPLICAS`, default 1; 3 on a 3-node cluster). */
  readonly natsReplicas: number
  readonly roles: ReadonlyArray<Role>
  readonly port: number
  readonly adminToken: Option.Option<Redacted.Redacted>
  /** The master key of the key store (`BANK_MASTER_KEY`); else read from {@link BankConfig.masterKeyFile}. */
  readonly masterKey: Option.Option<Redacted.Redacted>
  /** Where the master key is kept when `BANK_MASTER_KEY` is unset (made on first start). */
  readonly masterKeyFile: Option.Option<string>
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
  natsUrl: optional(Config.string("NATS_URL"), (url) => url === "").pipe(
    Config.map(Option.map((urls) => urls.split(",").map((url) => url.trim())))
  ),
  natsReplicas: Config.withDefault(
    Config.integer("NATS_REPLICAS").pipe(
      Config.validate({ message: "NATS_REPLICAS must be 1 to 5", validation: (n) => n >= 1 && n <= 5 })
    ),
    1
  ),
  roles: Config.withDefault(Config.array(Config.literal(...roles)(), "BANK_ROLES"), roles).pipe(
    Config.validate({ message: "BANK_ROLES names no role", validation: (chosen) => chosen.length > 0 })
  ),
  // 0 picks a free port (the demo)
  port: Config.withDefault(
    Config.integer("PORT").pipe(
      Config.validate({ message: "PORT must be 0 to 65535", validation: (p) => p >= 0 && p <= 65535 })
    ),
    3000
  ),
  adminToken: optional(Config.redacted("BANK_ADMIN_TOKEN"), (token) => Redacted.value(token) === ""),
  masterKey: optional(Config.redacted("BANK_MASTER_KEY"), (key) => Redacted.value(key) === ""),
  masterKeyFile: optional(Config.string("BANK_MASTER_KEY_FILE"), (file) => file === ""),
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

/**
 * The master key: `BANK_MASTER_KEY`, else the key file's, the file made with a fresh random key (readable
 * by its owner only) when missing. Two processes starting at once both read the one file that was made.
 */
export const masterKey = (config: BankConfig): Effect.Effect<Redacted.Redacted<string>, Error> =>
  Option.match(config.masterKey, {
    onSome: Effect.succeed,
    onNone: () =>
      Effect.gen(function* () {
        const file = Option.getOrElse(config.masterKeyFile, () =>
          path.join(path.dirname(config.sqliteFile), "bank.key")
        )
        yield* Effect.try(() => fs.mkdirSync(path.dirname(file), { recursive: true }))
        if (!fs.existsSync(file)) {
          // written aside, then linked in place (which fails if a file is there): never a half-written key,
          // and a file made by another process meanwhile is kept, and read below
          const fresh = `${file}.${process.pid}.${randomBytes(4).toString("hex")}`
          yield* Effect.try(() =>
            fs.writeFileSync(fresh, `${randomBytes(32).toString("base64")}\n`, { flag: "wx", mode: 0o600 })
          )
          yield* Effect.ignore(Effect.try(() => fs.linkSync(fresh, file)))
          yield* Effect.try(() => fs.unlinkSync(fresh))
        }
        return Redacted.make(yield* Effect.try(() => fs.readFileSync(file, "utf8").trim()))
      }).pipe(Effect.mapError((cause) => new Error(`cannot read or make the master key file: ${String(cause)}`)))
  })

/** The database, its stores and the wake-up hints. */
const stores = (config: BankConfig) => {
  const services = Layer.mergeAll(
    SqlEventStore.layer(),
    Layer.unwrapEffect(Effect.map(Effect.orDie(masterKey(config)), (key) => SqlKeyStore.layer({ masterKey: key }))),
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
      const stream = { stream: "BANK_EVENTS", subjectPrefix: "bank", replicas: config.natsReplicas }
      const publisher = NatsPublisher.layer(stream)
      // the publisher creates the stream the bus's consumers read
      return Layer.mergeAll(publisher, Layer.provide(NatsEventBus.layer(stream), publisher)).pipe(
        Layer.provideMerge(Nats.layer({ servers, name: "bank" }))
      )
    }
  })

const commandBus = CommandBus.layer({
  groups: [AccountCommands],
  middleware: [CommandMiddleware.tracing, CommandMiddleware.recoverDefects, CommandMiddleware.timeout("10 seconds")]
}).pipe(Layer.provide(accountHandlers()))

/** The account queries, answered from the read models (a `readAfter` waits for the two projections). */
const queryBus = Queries.queryBus.pipe(Layer.provide(Queries.accountQueryHandlers))

/** The long-running work of the `projections` role, each a fiber in the application's scope. */
const projectionRunners = Layer.mergeAll(
  Projection.layer(ReadModels.Balances),
  Projection.layer(ReadModels.History),
  Saga.layer(Transfer)
)

/** The long-running work of the `relay` role. */
const relayRunners = Layer.merge(Outbox.relayLayer(), Alerts.layer)

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

/** The runners of the configuration's `projections` and `relay` roles. */
const runners = (config: BankConfig) =>
  Layer.mergeAll(
    config.roles.includes("projections") ? projectionRunners : Layer.empty,
    config.roles.includes("relay") ? relayRunners : Layer.empty
  )

/** `parts` with what every role needs: the stores, messaging, the command bus and telemetry. */
const withFoundation = <A, E, R>(config: BankConfig, parts: Layer.Layer<A, E, R>) =>
  parts.pipe(
    Layer.provide(telemetry(config)),
    Layer.provideMerge(commandBus),
    Layer.provideMerge(queryBus),
    Layer.provideMerge(messaging(config)),
    Layer.provideMerge(stores(config))
  )

/** The application serving its API (whatever `roles` says of `api`), with the runners its roles name. */
export const layer = (config: BankConfig) => withFoundation(config, Layer.merge(http(config), runners(config)))

/** The application without its API: the runners its roles name (a process of roles without `api`). */
export const layerWithoutApi = (config: BankConfig) => withFoundation(config, runners(config))
