// Tracing with OpenTelemetry: a command goes through the bus (`CommandBus.dispatch`), the decider
// (`Aggregate.handle`) and the store (`EventStore.append`) in one trace; the projection batch that handles
// its event runs later, in a trace of its own, with a span link back to the command's trace.
// `Otel.layerMemory` records the spans in memory (no collector); `Otel.layerOtlp` exports them (below).
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CheckpointStore, CommandBus, CommandMiddleware, MemoryEventStore, Projection } from "effect-eventsourcing"
import { Otel } from "effect-eventsourcing/observability"
import { Account } from "../bank/Account.js"
import { AccountCommands, accountHandlers, OpenAccount } from "../bank/commands.js"

// a projection (here one that does nothing): each batch it handles is a `Projection.batch` span
const Audit = Projection.make({ name: "audit", events: Account.codec, handle: () => Effect.void })

export const program = Effect.gen(function* () {
  const bus = yield* CommandBus.CommandBus
  yield* bus.dispatch(new OpenAccount({ accountId: "1", owner: "Ada" }))
  // a running `Projection.layer(Audit)` does the same, later; catching up here keeps the example short
  yield* Projection.catchUp(Audit)

  const spans = yield* Effect.flatMap(Otel.SpanRecorder, (recorder) => recorder.spans)
  for (const span of spans) {
    const { spanId, traceId } = span.spanContext()
    const links = span.links.map((l) => ` -> link to ${l.context.traceId}/${l.context.spanId}`).join("")
    yield* Effect.log(`${traceId}/${spanId} ${span.name}${links}`)
  }
  const command = spans.find((s) => s.name === "CommandBus.dispatch")!
  const append = spans.find((s) => s.name === "EventStore.append")!
  const batch = spans.find((s) => s.name === "Projection.batch")!
  const commandTrace = command.spanContext().traceId
  return {
    spans: spans.map((s) => s.name),
    appendInCommandTrace: append.spanContext().traceId === commandTrace,
    batchInOwnTrace: batch.spanContext().traceId !== commandTrace,
    // the link points at the span whose `traceparent` the event carries in its metadata (`Aggregate.handle`)
    batchLinks: batch.links.map((link) => ({
      toCommandTrace: link.context.traceId === commandTrace,
      span: spans.find((s) => s.spanContext().spanId === link.context.spanId)?.name
    }))
  }
})

// the bank's account commands on a bus whose `tracing` middleware opens a span per command
const Bus = CommandBus.layer({ groups: [AccountCommands], middleware: [CommandMiddleware.tracing] }).pipe(
  Layer.provide(accountHandlers()),
  Layer.provideMerge(Layer.merge(MemoryEventStore.layer(), CheckpointStore.layerMemory))
)

export const main = program.pipe(Effect.provide(Bus), Effect.provide(Otel.layerMemory({ serviceName: "bank" })))

// With a real collector: `Otel.layerOtlp` exports spans and metrics over OTLP/HTTP, configured by the
// standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, default http://localhost:4318, `OTEL_SERVICE_NAME`...),
// with an `HttpClient` to send them. Provide it at the top of the program, in place of `layerMemory`:
//   program.pipe(Effect.provide(Bus), Effect.provide(OtlpLive))
// Spans are sent every few seconds and flushed when the Layer's scope closes.
export const OtlpLive = Otel.layerOtlp({ serviceName: "bank" }).pipe(Layer.provide(FetchHttpClient.layer))

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main).then(console.log)
