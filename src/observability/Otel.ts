/**
 * OpenTelemetry for programs using the library: Layers that send Effect's spans (the library's
 * `CommandBus.dispatch`, `Aggregate.handle`, `EventStore.append`, `Projection.batch`, `Saga.react`,
 * `Outbox.publish`, and the program's own) and Effect's metrics (see `Metrics`) to a collector
 * ({@link layerOtlp}, configured by the standard environment variables), and an in-memory tracer for tests
 * ({@link layerMemory}). A trace goes from a command to the events it appended; projection batches and
 * saga reactions link back to it. The variables, trace continuity and Gotchas: {@link layerOtlp}.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as OtlpLogger from "@effect/opentelemetry/OtlpLogger"
import * as OtlpMetrics from "@effect/opentelemetry/OtlpMetrics"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import type * as Resource from "@effect/opentelemetry/Resource"
import type * as HttpClient from "@effect/platform/HttpClient"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

// ---------------------------------------------------------------------------------------------------
// OTLP
// ---------------------------------------------------------------------------------------------------

/** Options of {@link layerOtlp}; what they set wins over the environment. */
export interface OtlpOptions {
  /** Default: `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else `unknown_service:node`. */
  readonly serviceName?: string
  /** Default: `service.version` in `OTEL_RESOURCE_ATTRIBUTES`, else `OTEL_SERVICE_VERSION`. */
  readonly serviceVersion?: string
  /** Resource attributes, added to those of `OTEL_RESOURCE_ATTRIBUTES`. */
  readonly attributes?: Readonly<Record<string, unknown>>
  /** Export spans; default true. */
  readonly traces?: boolean
  /** Export Effect's metrics; default true. */
  readonly metrics?: boolean
  /** Export Effect's logs (beside the program's own logger); default false. */
  readonly logs?: boolean
  /** How often spans and logs are sent; default 5 seconds. */
  readonly exportInterval?: Duration.DurationInput
  /** How often metrics are sent; default 10 seconds. */
  readonly metricsExportInterval?: Duration.DurationInput
  /** How long the final flush may take when the scope closes; default 3 seconds. */
  readonly shutdownTimeout?: Duration.DurationInput
}

/** The standard OpenTelemetry environment variables {@link layerOtlp} reads. */
export const otlpConfig = Config.all({
  disabled: Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
  endpoint: Config.string("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(Config.withDefault("http://localhost:4318")),
  tracesEndpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
  metricsEndpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")),
  logsEndpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")),
  headers: Config.string("OTEL_EXPORTER_OTLP_HEADERS").pipe(Config.withDefault(""), Config.map(parseList)),
  protocol: Config.literal(
    "http/protobuf",
    "http/json"
  )("OTEL_EXPORTER_OTLP_PROTOCOL").pipe(Config.withDefault("http/protobuf" as const)),
  serviceName: Config.option(Config.nonEmptyString("OTEL_SERVICE_NAME")),
  resourceAttributes: Config.string("OTEL_RESOURCE_ATTRIBUTES").pipe(Config.withDefault(""), Config.map(parseList))
})

/**
 * Exports spans and metrics (and, if asked, logs) over OTLP/HTTP, as configured by the standard
 * environment variables (below) and `options`. Needs an `HttpClient`: provide
 * `FetchHttpClient.layer` (`@effect/platform`) or `NodeHttpClient.layerUndici` (`@effect/platform-node`).
 * With `OTEL_SDK_DISABLED=true` it does nothing. An unsupported `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`)
 * fails the Layer with a `ConfigError`.
 *
 * **Gotchas**: export happens in the Layer's scope: provide it at the top of the program (the spans of
 * code outside it go to Effect's default tracer, which keeps them nowhere).
 *
 * - {@link layerOtlp}: OTLP over HTTP (`@effect/opentelemetry`'s own exporters, no OpenTelemetry SDK),
 *   configured by the standard environment variables, read with Effect `Config` (so a `ConfigProvider`
 *   can supply them): `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4318`), the per-signal
 *   `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
 *   `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `http/json`), `OTEL_SERVICE_NAME`,
 *   `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SDK_DISABLED`.
 * - {@link layerMemory}: the OpenTelemetry SDK with an in-memory exporter, read through {@link SpanRecorder}.
 *
 * Trace continuity: the command's trace covers the dispatch, the aggregate and the append; the events
 * carry the append's `traceparent` in their metadata (and NATS messages in a `traceparent` header).
 * Projection batches and saga reactions run later, in traces of their own, with span links to the spans
 * that appended their events.
 *
 * **Gotchas**: spans and metrics are exported in the background every few seconds, and flushed when the
 * Layer's scope closes: a process that exits without closing it loses the last ones. An unreachable
 * collector pauses the exporter for a minute (logged at debug level); the program is never slowed down.
 * Metrics are process-global: every process exports its own, under its resource attributes.
 */
export const layerOtlp = (
  options: OtlpOptions = {}
): Layer.Layer<never, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(
    Effect.map(otlpConfig, (config) => {
      if (config.disabled) return Layer.empty
      const base = config.endpoint.replace(/\/+$/, "")
      const attributes: Record<string, unknown> = { ...config.resourceAttributes, ...options.attributes }
      const serviceName =
        options.serviceName ??
        Option.getOrUndefined(config.serviceName) ??
        (typeof attributes["service.name"] === "string" ? attributes["service.name"] : "unknown_service:node")
      // @effect/opentelemetry adds `service.name` to the attributes it reads from OTEL_RESOURCE_ATTRIBUTES
      // itself: one given there must say the same
      if ("service.name" in attributes) attributes["service.name"] = serviceName
      const resource = {
        serviceName,
        ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion }),
        attributes
      }
      const common = { resource, headers: config.headers, shutdownTimeout: options.shutdownTimeout }
      const traces =
        options.traces === false
          ? Layer.empty
          : OtlpTracer.layer({
              ...common,
              url: Option.getOrElse(config.tracesEndpoint, () => `${base}/v1/traces`),
              exportInterval: options.exportInterval
            })
      const metrics =
        options.metrics === false
          ? Layer.empty
          : OtlpMetrics.layer({
              ...common,
              url: Option.getOrElse(config.metricsEndpoint, () => `${base}/v1/metrics`),
              exportInterval: options.metricsExportInterval
            })
      const logs =
        options.logs === true
          ? OtlpLogger.layer({
              ...common,
              url: Option.getOrElse(config.logsEndpoint, () => `${base}/v1/logs`),
              exportInterval: options.exportInterval
            })
          : Layer.empty
      return Layer.mergeAll(traces, metrics, logs).pipe(
        Layer.provide(config.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf)
      )
    })
  )

/** `k1=v1,k2=v2` (values percent-encoded), as in `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`. */
function parseList(text: string): Record<string, string> {
  const entries: Record<string, string> = {}
  for (const item of text.split(",")) {
    const at = item.indexOf("=")
    if (at <= 0) continue
    const key = item.slice(0, at).trim()
    const value = item.slice(at + 1).trim()
    if (key.length > 0) entries[key] = decodePercent(value)
  }
  return entries
}

/** Percent-decoded; a malformed escape keeps the value as written. */
const decodePercent = (value: string): string =>
  value.includes("%")
    ? Either.getOrElse(
        Either.try(() => decodeURIComponent(value)),
        () => value
      )
    : value

// ---------------------------------------------------------------------------------------------------
// in memory (tests)
// ---------------------------------------------------------------------------------------------------

/** The spans recorded by {@link layerMemory}. */
export class SpanRecorder extends Context.Tag("effect-eventsourcing/SpanRecorder")<
  SpanRecorder,
  {
    /** The spans ended so far, in the order they ended. */
    readonly spans: Effect.Effect<ReadonlyArray<ReadableSpan>>
    /** Forgets the spans recorded so far. */
    readonly reset: Effect.Effect<void>
  }
>() {}

/**
 * The OpenTelemetry SDK's tracer with an in-memory exporter (every span exported as it ends), for tests:
 * read the spans with {@link SpanRecorder}. Each build records apart from the others.
 */
export const layerMemory = (options?: {
  readonly serviceName?: string
}): Layer.Layer<SpanRecorder | Resource.Resource> =>
  Layer.unwrapEffect(
    Effect.sync(() => {
      const exporter = new InMemorySpanExporter()
      return Layer.merge(
        Layer.succeed(
          SpanRecorder,
          SpanRecorder.of({
            spans: Effect.sync(() => [...exporter.getFinishedSpans()]),
            reset: Effect.sync(() => exporter.reset())
          })
        ),
        NodeSdk.layer(() => ({
          spanProcessor: new SimpleSpanProcessor(exporter),
          resource: { serviceName: options?.serviceName ?? "effect-eventsourcing" }
        }))
      )
    })
  )
