import { assert, describe, it } from "@effect/vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { AccountEvent } from "../../examples/bank/Account.js"
import { makeTransfer } from "../../examples/bank/Transfer.js"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as CommandBus from "../../src/CommandBus.js"
import * as CommandMiddleware from "../../src/CommandMiddleware.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import { Otel } from "../../src/observability/index.js"
import * as Projection from "../../src/Projection.js"
import * as SagaStore from "../../src/SagaStore.js"
import { accountHandlers, Accounts, Deposit, OpenAccount } from "../support/commands.js"
import { uniqueCategory } from "../support/ids.js"

const dispatch = <C extends CommandBus.Command>(command: C) =>
  Effect.flatMap(CommandBus.CommandBus, (bus) => bus.dispatch(command))

/** The bank's account commands on a traced bus, over memory stores, with an in-memory tracer. */
const world = (prefix: string) =>
  CommandBus.layer({ groups: [Accounts], middleware: [CommandMiddleware.tracing], retry: Schedule.recurs(0) }).pipe(
    Layer.provide(accountHandlers(prefix)),
    Layer.provideMerge(Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory, SagaStore.layerMemory)),
    Layer.provideMerge(Otel.layerMemory())
  )

const spans = Effect.flatMap(Otel.SpanRecorder, (r) => r.spans)

const named = (all: ReadonlyArray<ReadableSpan>, name: string) => all.filter((s) => s.name === name)

const only = (all: ReadonlyArray<ReadableSpan>, name: string) => {
  const found = named(all, name)
  assert.strictEqual(found.length, 1, `one ${name} span, found ${found.length}`)
  return found[0]!
}

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId

describe("Otel", () => {
  it.live("a command's spans share one trace; the projection batch runs in its own, linked to it", () =>
    Effect.gen(function* () {
      const prefix = yield* uniqueCategory
      yield* Effect.gen(function* () {
        yield* dispatch(new OpenAccount({ accountId: "1", owner: "Ada" }))
        const handled = yield* Ref.make<ReadonlyArray<Event.RecordedEvent>>([])
        const projection = Projection.make({
          name: `balances-${prefix}`,
          events: AccountEvent,
          handle: (_event, envelope) => Ref.update(handled, (all) => [...all, envelope])
        })
        yield* Projection.catchUp(projection)

        const all = yield* spans
        const command = only(all, "CommandBus.dispatch")
        const aggregate = only(all, "Aggregate.handle")
        const append = only(all, "EventStore.append")
        const batch = only(all, "Projection.batch")
        const traceId = command.spanContext().traceId
        assert.strictEqual(command.attributes["command.tag"], "OpenAccount")
        assert.strictEqual(aggregate.spanContext().traceId, traceId)
        assert.strictEqual(append.spanContext().traceId, traceId)
        assert.strictEqual(parentOf(aggregate), command.spanContext().spanId)
        assert.strictEqual(parentOf(append), aggregate.spanContext().spanId)

        // the event carries the aggregate span's traceparent...
        const [event] = yield* Ref.get(handled)
        assert.strictEqual(
          event?.metadata.traceparent,
          `00-${traceId}-${aggregate.spanContext().spanId}-01`,
          "the event's traceparent names the Aggregate.handle span"
        )
        // ...and the batch, in a trace of its own, links to it
        assert.notStrictEqual(batch.spanContext().traceId, traceId)
        assert.strictEqual(batch.attributes.projection, `balances-${prefix}`)
        assert.deepStrictEqual(
          batch.links.map((l) => [l.context.traceId, l.context.spanId]),
          [[traceId, aggregate.spanContext().spanId]]
        )
      }).pipe(Effect.provide(world(prefix)))
    })
  )

  it.live("a batch links once per appending span, and ignores malformed traceparents", () =>
    Effect.gen(function* () {
      const prefix = yield* uniqueCategory
      yield* Effect.gen(function* () {
        yield* dispatch(new OpenAccount({ accountId: "1", owner: "Ada" }))
        yield* dispatch(new Deposit({ accountId: "1", amount: 5 }))
        // an event whose metadata holds no valid traceparent (a foreign writer, a corrupt value)
        const store = yield* EventStore.EventStore
        const version = yield* store.streamVersion(`Account-${prefix}1`)
        const bad = yield* Event.make({
          type: "MoneyDeposited",
          data: { amount: 1, balance: 6 },
          metadata: { traceparent: "00-not-a-trace-context-01" }
        })
        yield* store.append(`Account-${prefix}1`, [bad], { expectedVersion: Event.Exact(version) })
        yield* Projection.catchUp(
          Projection.make({ name: `links-${prefix}`, events: AccountEvent, handle: () => Effect.void })
        )
        const all = yield* spans
        const aggregates = named(all, "Aggregate.handle")
        assert.strictEqual(aggregates.length, 2)
        const batch = only(all, "Projection.batch")
        assert.strictEqual(batch.attributes.events, 3)
        assert.sameMembers(
          batch.links.map((l) => l.context.spanId),
          aggregates.map((a) => a.spanContext().spanId)
        )
      }).pipe(Effect.provide(world(prefix)))
    })
  )

  it.live("a saga reaction links to the span that appended its event; its commands continue its trace", () =>
    Effect.gen(function* () {
      const prefix = yield* uniqueCategory
      const saga = makeTransfer({ name: `transfer-${prefix}`, category: `${prefix}Transfer`, deadline: "1 hour" })
      yield* Effect.gen(function* () {
        yield* dispatch(new OpenAccount({ accountId: "A", owner: "Ada" }))
        yield* dispatch(new OpenAccount({ accountId: "B", owner: "Bob" }))
        yield* dispatch(new Deposit({ accountId: "A", amount: 100 }))
        // the request is appended under a span of its own, its traceparent in the metadata
        const requester = yield* Effect.gen(function* () {
          const span = yield* Effect.currentSpan
          const event = yield* Event.make({
            type: "TransferRequested",
            data: { transferId: "t1", from: "A", to: "B", amount: 30 },
            metadata: { traceparent: `00-${span.traceId}-${span.spanId}-01` }
          })
          yield* Effect.flatMap(EventStore.EventStore, (s) => s.append(`${prefix}Transfer-t1`, [event]))
          return { traceId: span.traceId, spanId: span.spanId }
        }).pipe(Effect.withSpan("Test.request"))
        yield* Projection.catchUp(saga.projection)

        const all = yield* spans
        const react = only(all, "Saga.react")
        assert.strictEqual(react.attributes.saga, `transfer-${prefix}`)
        assert.deepStrictEqual(
          react.links.map((l) => [l.context.traceId, l.context.spanId]),
          [[requester.traceId, requester.spanId]]
        )
        assert.notStrictEqual(react.spanContext().traceId, requester.traceId)
        // the withdrawal and the deposit the saga sent are in the reaction's trace
        const sent = named(all, "CommandBus.dispatch").filter(
          (s) => s.spanContext().traceId === react.spanContext().traceId
        )
        assert.deepStrictEqual(sent.map((s) => s.attributes["command.tag"]).sort(), ["Deposit", "Withdraw"])
      }).pipe(Effect.provide(world(prefix)))
    })
  )

  describe("layerOtlp", () => {
    /** Runs a span under `layerOtlp` with this environment, closes the scope (the final flush), returns the requests. */
    const exportWith = (env: Record<string, string>, options?: Otel.OtlpOptions) =>
      Effect.gen(function* () {
        const requests = yield* Ref.make<ReadonlyArray<{ url: string; headers: Record<string, string>; body: string }>>(
          []
        )
        const client = HttpClient.make((request) =>
          Effect.as(
            Ref.update(requests, (all) => [
              ...all,
              {
                url: request.url,
                headers: { ...request.headers },
                body: request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
              }
            ]),
            HttpClientResponse.fromWeb(request, new Response("{}", { status: 200 }))
          )
        )
        const layer = Otel.layerOtlp({ metrics: false, ...options }).pipe(
          Layer.provide(Layer.succeed(HttpClient.HttpClient, client)),
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
        )
        const scope = yield* Scope.make()
        const exit = yield* Effect.exit(
          Effect.void.pipe(
            Effect.withSpan("Test.work", { attributes: { answer: 42 } }),
            Effect.provide(layer),
            Scope.extend(scope)
          )
        )
        yield* Scope.close(scope, Exit.void)
        return { exit, requests: yield* Ref.get(requests) }
      })

    it.live("sends spans to the endpoint of OTEL_EXPORTER_OTLP_ENDPOINT, as the environment says", () =>
      Effect.gen(function* () {
        const { exit, requests } = yield* exportWith({
          OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector.test:4318/",
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20abc,x-tenant=t1",
          OTEL_SERVICE_NAME: "bank",
          OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test,service.name=ignored"
        })
        assert.isTrue(Exit.isSuccess(exit))
        const traces = requests.filter((r) => r.url === "http://collector.test:4318/v1/traces")
        assert.strictEqual(traces.length, 1, `one trace export, got ${requests.map((r) => r.url).join(", ")}`)
        const request = traces[0]!
        assert.strictEqual(request.headers["authorization"], "Bearer abc")
        assert.strictEqual(request.headers["x-tenant"], "t1")
        const body = JSON.parse(request.body) as {
          resourceSpans: Array<{
            resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }
            scopeSpans: Array<{ spans: Array<{ name: string }> }>
          }>
        }
        const resource = body.resourceSpans[0]!.resource.attributes
        const valuesOf = (key: string) => resource.filter((a) => a.key === key).map((a) => a.value.stringValue)
        // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES
        assert.isNotEmpty(valuesOf("service.name"))
        assert.deepStrictEqual(new Set(valuesOf("service.name")), new Set(["bank"]))
        assert.deepStrictEqual(valuesOf("deployment.environment"), ["test"])
        assert.deepStrictEqual(
          body.resourceSpans[0]!.scopeSpans[0]!.spans.map((s) => s.name),
          ["Test.work"]
        )
      })
    )

    it.live("options win over the environment; OTEL_SDK_DISABLED exports nothing; grpc is refused", () =>
      Effect.gen(function* () {
        const named = yield* exportWith(
          { OTEL_SERVICE_NAME: "from-env", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" },
          { serviceName: "from-options" }
        )
        assert.strictEqual(named.requests.length, 1)
        assert.strictEqual(named.requests[0]!.url, "http://localhost:4318/v1/traces")
        assert.include(named.requests[0]!.body, '"from-options"')
        assert.notInclude(named.requests[0]!.body, '"from-env"')

        const disabled = yield* exportWith({ OTEL_SDK_DISABLED: "true", OTEL_SERVICE_NAME: "bank" })
        assert.isTrue(Exit.isSuccess(disabled.exit))
        assert.deepStrictEqual(disabled.requests, [])

        const grpc = yield* exportWith({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })
        assert.isTrue(Exit.isFailure(grpc.exit))
        assert.deepStrictEqual(grpc.requests, [])
        assert.include(
          String(Exit.isFailure(grpc.exit) ? Cause.pretty(grpc.exit.cause) : ""),
          "OTEL_EXPORTER_OTLP_PROTOCOL"
        )
      })
    )
  })
})
