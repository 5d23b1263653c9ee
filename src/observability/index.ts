/**
 * Observability: OpenTelemetry Layers (`Otel`: OTLP export configured by the standard environment
 * variables, an in-memory tracer for tests). A separate entry point so that users of the core modules do
 * not load the OpenTelemetry packages. The metrics themselves are in the core (`Metrics`).
 */
export * as Otel from "./Otel.js"
