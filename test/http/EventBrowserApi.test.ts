import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import * as EventBrowserApi from "../../src/http/EventBrowserApi.js"
import * as Prometheus from "../../src/http/prometheus.js"
import * as Projection from "../../src/Projection.js"
import * as Saga from "../../src/Saga.js"
import * as SagaStore from "../../src/SagaStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { sqliteMemory } from "../support/sql.js"

// ---------------------------------------------------------------------------------------------------
// fixtures
// ---------------------------------------------------------------------------------------------------

const categories = ["Order", "Account", "Cart"] as const
const types = ["Created", "Updated", "Closed"] as const
const total = 257

/** 257 events in batches of 1 to 4 (several events per transaction), across 3 categories of 5 streams. */
const seed = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  let n = 0
  let batch = 0
  while (n < total) {
    const size = Math.min(total - n, 1 + (batch % 4))
    const category = categories[batch % categories.length]!
    const streamId = `${category}-${batch % 5}`
    const events = yield* Effect.forEach(Array.from({ length: size }), (_, i) =>
      Event.make({
        type: types[(n + i) % types.length]!,
        // content a page must never interpret
        data: { n: n + i, note: "<img src=x onerror=alert(1)>" }
      })
    )
    yield* store.append(streamId, events)
    n += size
    batch++
    // spread recordedAt over a few milliseconds, for the time filter
    if (batch % 10 === 0) yield* Effect.sleep("2 millis")
  }
})

const readAll = (options?: EventStore.ReadAllOptions) =>
  Effect.flatMap(EventStore.EventStore, (s) => Stream.runCollect(s.readAll(options))).pipe(
    Effect.map(Chunk.toReadonlyArray)
  )

const Counted = Schema.TaggedStruct("Created", {})

/** A projection counting `Created` events; `truncates` counts its rebuilds. */
const makeCounter = Effect.gen(function* () {
  const handled = yield* Ref.make(0)
  const truncates = yield* Ref.make(0)
  const projection = Projection.make({
    name: "created-counter",
    events: Counted,
    handle: () => Ref.update(handled, (n) => n + 1),
    truncate: Effect.zipRight(
      Ref.update(truncates, (n) => n + 1),
      Ref.set(handled, 0)
    )
  })
  return { handled, truncates, projection }
})

/** A projection that can handle nothing: its partition fails on the first event. */
const poisoned = Projection.make({
  name: "poisoned",
  events: Counted,
  retry: Schedule.recurs(0),
  handle: () => Effect.fail("cannot handle this")
})

const TransferState = Schema.Struct({ step: Schema.String, amount: Schema.Number })

const transfers = Saga.make({
  name: "transfers",
  events: Counted,
  correlate: () => undefined,
  state: TransferState,
  initialState: { step: "new", amount: 0 },
  commands: [],
  react: (state) => ({ state })
})

const seedSaga = Effect.flatMap(SagaStore.SagaStore, (store) =>
  store.save(
    "transfers",
    "t-1",
    0,
    { status: "running", state: { step: "debited", amount: 42 }, compensations: [], error: Option.none() },
    { schedule: [{ name: "deadline", dueAt: 1_700_000_000_000 }], cancel: [] }
  )
)

const token = "s3cret-token"

const stores = Layer.mergeAll(
  MemoryEventStore.layer(),
  CheckpointStore.layerMemory,
  Projection.layerRegistry,
  SagaStore.layerMemory
)

const counter = Effect.runSync(makeCounter)

/** The main world: memory stores, 257 events, a running projection, a saga, admin on, a short scan. */
const main = EventBrowserApi.layerServer({
  sagas: [transfers],
  projections: [counter.projection],
  adminToken: Redacted.make(token),
  checks: { nats: Effect.void },
  scanLimit: 25
}).pipe(
  Layer.provideMerge(Projection.layer(counter.projection, { pollInterval: "20 millis", leaseTtl: "1 second" })),
  Layer.provideMerge(Layer.effectDiscard(Effect.zipRight(seed, seedSaga))),
  Layer.provideMerge(stores),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

// ---------------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------------

const send = (request: HttpClientRequest.HttpClientRequest) =>
  Effect.flatMap(HttpClient.HttpClient, (client) => client.execute(request)).pipe(Effect.scoped)

const get = (url: string) => send(HttpClientRequest.get(url))

const json = (response: HttpClientResponse.HttpClientResponse) => response.json as Effect.Effect<any, unknown>

const getJson = (url: string, status = 200) =>
  Effect.gen(function* () {
    const response = yield* get(url)
    const body = yield* json(response)
    assert.strictEqual(response.status, status, `${url}: ${JSON.stringify(body)}`)
    return body
  })

const query = (params: Record<string, string | ReadonlyArray<string> | undefined>) => {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined) continue
    for (const v of typeof value === "string" ? [value] : value) search.append(key, v)
  }
  return search.toString()
}

/** Follows `next` from the start; returns every event id in order, and the number of pages. */
const walk = (params: Record<string, string | ReadonlyArray<string> | undefined>) =>
  Effect.gen(function* () {
    const ids: Array<string> = []
    let after: string | undefined
    let pages = 0
    let shortPages = 0
    while (true) {
      const page = yield* getJson(`/events?${query({ ...params, after })}`)
      pages++
      if (page.events.length < Number(params.limit ?? EventBrowserApi.defaultLimit)) shortPages++
      ids.push(...page.events.map((e: { eventId: string }) => e.eventId))
      if (page.next === null) return { ids, pages, shortPages, last: page.last as string | null }
      assert.isTrue(pages < 1000, "pagination does not progress")
      after = page.next
    }
  })

const decodeError = (body: any) => {
  assert.strictEqual(body._tag, "HttpApiDecodeError")
  assert.isString(body.message)
  assert.isAbove(body.message.length, 0)
}

// ---------------------------------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------------------------------

describe("EventBrowserApi cursors", () => {
  it("round-trips checkpoints and refuses anything else", () => {
    const checkpoint = { transaction: 12n, position: 9_007_199_254_740_993n }
    const cursor = EventBrowserApi.encodeCursor(checkpoint)
    assert.match(cursor, /^[A-Za-z0-9_-]+$/)
    assert.deepStrictEqual(Option.getRight(EventBrowserApi.decodeCursor(cursor)), Option.some(checkpoint))
    for (const bad of ["", "!!", "MTI", "YWJj", "MDE6Mg", "MTI6OQ==", "x".repeat(100)]) {
      assert.isTrue(EventBrowserApi.decodeCursor(bad)._tag === "Left", bad)
    }
  })
})

layer(main, { excludeTestServices: true })("EventBrowserApi on memory stores", (it) => {
  it.effect("walks the whole log in pages of 10: exactly readAll, no duplicates, no holes", () =>
    Effect.gen(function* () {
      const expected = (yield* readAll()).map((e) => e.eventId)
      assert.strictEqual(expected.length, total)
      const { ids, last, pages } = yield* walk({ limit: "10" })
      assert.deepStrictEqual(ids, expected)
      assert.strictEqual(pages, 26)
      // `last` resumes after the end: nothing new yet
      const tail = yield* getJson(`/events?${query({ after: last! })}`)
      assert.deepStrictEqual(tail, { events: [], next: null, last })
    })
  )

  it.effect("renders events with string positions and transactions, and the default limit", () =>
    Effect.gen(function* () {
      const [first] = yield* readAll({ maxCount: 1 })
      const page = yield* getJson("/events")
      assert.strictEqual(page.events.length, EventBrowserApi.defaultLimit)
      const event = page.events[0]
      assert.strictEqual(event.eventId, first!.eventId)
      assert.strictEqual(event.position, String(first!.position))
      assert.strictEqual(event.transaction, String(first!.transaction))
      assert.strictEqual(event.recordedAt, DateTime.formatIso(first!.recordedAt))
      assert.deepStrictEqual(event.data, first!.data)
    })
  )

  it.effect("a category filter and a repeated type filter page exactly like readAll with them", () =>
    Effect.gen(function* () {
      const byCategory = (yield* readAll({ categories: ["Account"] })).map((e) => e.eventId)
      assert.isAbove(byCategory.length, 30)
      assert.deepStrictEqual((yield* walk({ limit: "10", category: "Account" })).ids, byCategory)
      const byTypes = (yield* readAll({ types: ["Created", "Closed"] })).map((e) => e.eventId)
      assert.isAbove(byTypes.length, 100)
      assert.deepStrictEqual((yield* walk({ limit: "10", type: ["Created", "Closed"] })).ids, byTypes)
      const both = (yield* readAll({ categories: ["Cart"], types: ["Updated"] })).map((e) => e.eventId)
      assert.deepStrictEqual((yield* walk({ limit: "7", category: "Cart", type: "Updated" })).ids, both)
    })
  )

  it.effect("a time range pages through short scans without duplicates or holes", () =>
    Effect.gen(function* () {
      const all = yield* readAll()
      const from = all[60]!.recordedAt
      const to = all[200]!.recordedAt
      assert.isTrue(DateTime.lessThan(from, to), "seeded events span several milliseconds")
      const expected = all
        .filter((e) => DateTime.greaterThanOrEqualTo(e.recordedAt, from) && DateTime.lessThan(e.recordedAt, to))
        .map((e) => e.eventId)
      const walked = yield* walk({ limit: "10", from: DateTime.formatIso(from), to: DateTime.formatIso(to) })
      assert.deepStrictEqual(walked.ids, expected)
      // the scan limit (25) cuts pages short: the events before `from` take scans of their own
      assert.isAbove(walked.shortPages, 1)
      // an empty range
      const empty = yield* getJson(`/events?${query({ from: DateTime.formatIso(to), to: DateTime.formatIso(from) })}`)
      assert.deepStrictEqual(empty.events, [])
      assert.strictEqual(empty.next, null)
    })
  )

  it.effect("bad query parameters are 400 with a typed error", () =>
    Effect.gen(function* () {
      const cursor = EventBrowserApi.encodeCursor({ transaction: 1n, position: 1n })
      for (const q of [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "limit=2.5",
        "after=not-a-cursor!",
        `after=${cursor}x`,
        "after=MTI",
        "from=yesterday",
        "to=2024-13-45T00:00:00Z",
        Array.from({ length: 101 }, (_, i) => `type=T${i}`).join("&"),
        // names no store could hold: never sent to the store (PostgreSQL fails on a NUL)
        "category=%00",
        "category=Order&category=a%00b",
        "category=",
        `category=${"C".repeat(Event.maxStreamIdLength + 1)}`,
        "type=%00",
        "type=Created&type=%0A"
      ]) {
        const response = yield* get(`/events?${q}`)
        assert.strictEqual(response.status, 400, q)
        decodeError(yield* json(response))
      }
      for (const url of [
        "/streams/Order-0?limit=0",
        "/streams/Order-0?fromVersion=0",
        "/streams/%20Order",
        "/sagas/transfers/t%00"
      ]) {
        const response = yield* get(url)
        assert.strictEqual(response.status, 400, url)
        decodeError(yield* json(response))
      }
      const control = yield* get(`/streams/${encodeURIComponent("Order-\u0001")}`)
      assert.strictEqual(control.status, 400)
      decodeError(yield* json(control))
    })
  )

  it.effect("a stream pages by version; the aggregate alias answers the same; 404 for no events", () =>
    Effect.gen(function* () {
      const expected = yield* Effect.flatMap(EventStore.EventStore, (s) => Stream.runCollect(s.readStream("Order-0")))
      const all = Chunk.toReadonlyArray(expected)
      assert.isAbove(all.length, 5)
      const first = yield* getJson("/streams/Order-0?limit=3")
      assert.strictEqual(first.streamId, "Order-0")
      assert.deepStrictEqual(
        first.events.map((e: any) => e.version),
        [1, 2, 3]
      )
      assert.strictEqual(first.next, 4)
      const rest = yield* getJson("/streams/Order-0?fromVersion=4&limit=1000")
      assert.strictEqual(rest.next, null)
      assert.deepStrictEqual(
        [...first.events, ...rest.events].map((e: any) => e.eventId),
        all.map((e) => e.eventId)
      )
      assert.deepStrictEqual(yield* getJson("/events/aggregate/Order-0?limit=3"), first)
      const missing = yield* getJson("/streams/Order-404", 404)
      assert.strictEqual(missing._tag, "NotFound")
      assert.strictEqual(missing.resource, "stream")
      assert.strictEqual(missing.id, "Order-404")
      assert.isString(missing.message)
      assert.strictEqual((yield* getJson("/events/aggregate/Nope-1", 404))._tag, "NotFound")
      // any valid stream id travels URL-encoded in the path, slashes and all
      const odd = "Odd-a/b c?d#e%f"
      yield* Effect.flatMap(EventStore.EventStore, (s) =>
        Effect.flatMap(Event.make({ type: "Odd", data: {} }), (e) => s.append(odd, [e]))
      )
      const oddPage = yield* getJson(`/streams/${encodeURIComponent(odd)}`)
      assert.strictEqual(oddPage.streamId, odd)
      assert.strictEqual(oddPage.events[0].streamId, odd)
    })
  )

  it.effect("projections: the running projection's status, by name; 404 for an unknown name", () =>
    Effect.gen(function* () {
      const created = (yield* readAll({ types: ["Created"] })).length
      yield* Ref.get(counter.handled).pipe(
        Effect.repeat({ until: (n) => n === created, schedule: Schedule.spaced("20 millis") }),
        Effect.timeout("10 seconds")
      )
      const body = yield* getJson("/projections")
      const status = body.projections.find((p: any) => p.name === "created-counter")
      assert.isDefined(status)
      const single = yield* getJson("/projections/created-counter")
      assert.strictEqual(single.name, "created-counter")
      assert.strictEqual(single.runners.length, 1)
      const runner = single.runners[0]
      assert.strictEqual(runner.version, 1)
      assert.strictEqual(runner.partitions, 1)
      assert.strictEqual(runner.lastError, null)
      assert.strictEqual(runner.owned.length, 1)
      assert.isString(runner.owned[0].checkpoint.position)
      assert.strictEqual(runner.owned[0].processed, created)
      assert.deepStrictEqual(Object.keys(runner.lag).sort(), ["events", "seconds"])
      // not on a standby (its lag there: test/sql/Standby.test.ts)
      assert.strictEqual(runner.replica, null)
      // live: no catch-up in progress (its shape while catching up: test/projection/progress.test.ts)
      assert.strictEqual(runner.progress, null)
      assert.strictEqual(runner.owned[0].progress, null)
      const missing = yield* getJson("/projections/nope", 404)
      assert.strictEqual(missing.resource, "projection")
    })
  )

  it.effect("saga instances: status, encoded state and pending timeouts; 404 for unknown saga or instance", () =>
    Effect.gen(function* () {
      const body = yield* getJson("/sagas/transfers/t-1")
      assert.deepStrictEqual(body, {
        saga: "transfers",
        instance: "t-1",
        status: "running",
        state: { step: "debited", amount: 42 },
        version: 1,
        compensations: 0,
        pendingTimeouts: [{ name: "deadline", dueAt: "2023-11-14T22:13:20.000Z" }],
        error: null
      })
      assert.strictEqual((yield* getJson("/sagas/transfers/t-2", 404)).resource, "sagaInstance")
      assert.strictEqual((yield* getJson("/sagas/unknown/t-1", 404)).resource, "saga")
    })
  )

  it.effect("health is 200 with every check ok", () =>
    Effect.gen(function* () {
      const body = yield* getJson("/health")
      assert.deepStrictEqual(body, {
        status: "ok",
        checks: { eventStore: { status: "ok" }, projections: { status: "ok" }, nats: { status: "ok" } }
      })
    })
  )

  it.effect("metrics are Prometheus text with the counters incremented", () =>
    Effect.gen(function* () {
      const counter = Metric.counter("eventbrowser_test_requests_total", { description: "a test\ncounter" }).pipe(
        Metric.tagged("route", 'a "quoted" \\ value\nhere')
      )
      yield* Metric.incrementBy(counter, 3)
      const histogram = Metric.histogram(
        "eventbrowser.test-latency",
        MetricBoundaries.linear({ start: 0, width: 10, count: 4 })
      )
      yield* Metric.update(histogram, 5)
      yield* Metric.update(histogram, 15)
      yield* Metric.update(histogram, 500)
      const response = yield* get("/metrics")
      assert.strictEqual(response.status, 200)
      assert.match(response.headers["content-type"] ?? "", /^text\/plain; version=0\.0\.4/)
      const text = yield* response.text
      assertPrometheus(text)
      assert.include(text, "# TYPE eventbrowser_test_requests_total counter")
      assert.include(text, "# HELP eventbrowser_test_requests_total a test\\ncounter")
      assert.include(text, 'eventbrowser_test_requests_total{route="a \\"quoted\\" \\\\ value\\nhere"} 3')
      assert.include(text, "# TYPE eventbrowser_test_latency histogram")
      assert.include(text, 'eventbrowser_test_latency_bucket{le="10"} 1')
      assert.include(text, 'eventbrowser_test_latency_bucket{le="20"} 2')
      assert.include(text, 'eventbrowser_test_latency_bucket{le="+Inf"} 3')
      assert.include(text, "eventbrowser_test_latency_sum 520")
      assert.include(text, "eventbrowser_test_latency_count 3")
    })
  )

  it.effect("admin: 401 without or with a wrong token, rebuilding nothing; the right one rebuilds", () =>
    Effect.gen(function* () {
      const url = "/admin/projections/created-counter/rebuild"
      const truncatesBefore = yield* Ref.get(counter.truncates)
      const none = yield* send(HttpClientRequest.post(url))
      assert.strictEqual(none.status, 401)
      assert.strictEqual((yield* json(none))._tag, "Unauthorized")
      for (const header of [`Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, `Basic ${token}`, token]) {
        const wrong = yield* send(
          HttpClientRequest.post(url).pipe(HttpClientRequest.setHeader("authorization", header))
        )
        assert.strictEqual(wrong.status, 401, header)
      }
      // refused: nothing was rebuilt
      assert.strictEqual(yield* Ref.get(counter.truncates), truncatesBefore)
      const ok = yield* send(HttpClientRequest.post(url).pipe(HttpClientRequest.bearerToken(token)))
      assert.strictEqual(ok.status, 200)
      assert.deepStrictEqual(yield* json(ok), { projection: "created-counter", versions: [1] })
      assert.strictEqual(yield* Ref.get(counter.truncates), truncatesBefore + 1)
      // the runner starts over and handles every event again
      const created = (yield* readAll({ types: ["Created"] })).length
      const processed = Effect.map(
        getJson("/projections/created-counter"),
        (body) => body.runners[0].owned[0].processed as number
      )
      yield* Ref.get(counter.handled).pipe(
        Effect.repeat({ until: (n) => n === created, schedule: Schedule.spaced("20 millis") }),
        Effect.timeout("10 seconds")
      )
      assert.isAtLeast(yield* processed, created)
      const unknown = yield* send(
        HttpClientRequest.post("/admin/projections/nope/rebuild").pipe(HttpClientRequest.bearerToken(token))
      )
      assert.strictEqual(unknown.status, 404)
    })
  )

  it.effect("GET / is the console page: its own files only, under a strict CSP", () =>
    Effect.gen(function* () {
      const response = yield* get("/")
      assert.strictEqual(response.status, 200)
      assert.match(response.headers["content-type"] ?? "", /^text\/html/)
      const csp = response.headers["content-security-policy"] ?? ""
      assert.include(csp, "default-src 'none'")
      assert.include(csp, "script-src 'self';")
      assert.notInclude(csp, "unsafe-inline")
      const html = yield* response.text
      assert.include(html, '<script src="assets/console.js" defer></script>')
      assert.notMatch(html, /<script>|<style>| style=| on[a-z]+=/)
      assert.notMatch(html, /(src|href)=["']?(https?:)?\/\//)
      const script = yield* (yield* get("/assets/console.js")).text
      assert.include(script, "textContent")
      assert.notInclude(script, "innerHTML")
    })
  )

  it.effect("/openapi.json documents every path", () =>
    Effect.gen(function* () {
      const spec = yield* getJson("/openapi.json")
      assert.strictEqual(spec.info.title, "effect-eventsourcing event browser")
      assert.includeMembers(Object.keys(spec.paths), [
        "/events",
        "/streams/{streamId}",
        "/events/aggregate/{id}",
        "/projections",
        "/projections/{name}",
        "/sagas/{name}/{id}",
        "/health",
        "/metrics",
        "/",
        "/admin/projections/{name}/rebuild",
        "/events/live",
        "/streams/{streamId}/states",
        "/sagas/{name}",
        "/console",
        "/console/samples",
        "/dead-letters",
        "/admin/dead-letters/{projection}/{id}/retry",
        "/admin/dead-letters/{projection}/{id}/discard",
        "/assets/{name}"
      ])
      assert.isDefined(spec.paths["/events"].get.responses["400"])
      assert.isDefined(spec.paths["/health"].get.responses["503"])
    })
  )
})

/** Without admin, with a failing check and a failed runner. */
const unhealthy = EventBrowserApi.layerServer({
  checks: { nats: Effect.fail(new Error("connection refused")), slow: Effect.never },
  healthTimeout: "100 millis"
}).pipe(
  Layer.provideMerge(Projection.layer(poisoned, { pollInterval: "20 millis" })),
  Layer.provideMerge(Layer.effectDiscard(seed)),
  Layer.provideMerge(stores),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

layer(unhealthy, { excludeTestServices: true })("EventBrowserApi when unhealthy, admin off", (it) => {
  it.effect("health is 503 with the failed checks marked", () =>
    Effect.gen(function* () {
      const failed = Effect.map(
        Effect.flatMap(Projection.Registry, (r) => r.statuses),
        (all) => all.some((s) => s.state === "failed")
      )
      yield* failed.pipe(
        Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("20 millis") }),
        Effect.timeout("10 seconds")
      )
      const body = yield* getJson("/health", 503)
      assert.strictEqual(body.status, "failed")
      assert.deepStrictEqual(body.checks.eventStore, { status: "ok" })
      assert.deepStrictEqual(body.checks.nats, { status: "failed", message: "connection refused" })
      assert.strictEqual(body.checks.slow.status, "failed")
      assert.match(body.checks.slow.message, /timed out/)
      assert.strictEqual(body.checks.projections.status, "failed")
      assert.include(body.checks.projections.message, "poisoned@1")
      assert.include(body.checks.projections.message, "cannot handle this")
      const runner = (yield* getJson("/projections/poisoned")).runners[0]
      assert.strictEqual(runner.state, "failed")
      assert.include(runner.lastError, "cannot handle this")
    })
  )

  it.effect("admin endpoints are 404 when no token is configured, whatever the header", () =>
    Effect.gen(function* () {
      for (const request of [
        HttpClientRequest.post("/admin/projections/poisoned/rebuild"),
        HttpClientRequest.post("/admin/projections/poisoned/rebuild").pipe(HttpClientRequest.bearerToken(token))
      ]) {
        const response = yield* send(request)
        assert.strictEqual(response.status, 404)
        const body = yield* json(response)
        assert.strictEqual(body._tag, "NotFound")
        assert.strictEqual(body.resource, "endpoint")
      }
    })
  )

  it.effect("sagas not configured are 404", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* getJson("/sagas/transfers/t-1", 404)).resource, "saga")
    })
  )
})

const sqlite = EventBrowserApi.layerServer({}).pipe(
  Layer.provideMerge(Layer.effectDiscard(seed)),
  Layer.provideMerge(Layer.mergeAll(SqlEventStore.layer(), Projection.layerRegistry)),
  Layer.provideMerge(sqliteMemory),
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.orDie
)

layer(sqlite, { excludeTestServices: true })("EventBrowserApi on SQLite", (it) => {
  it.effect("pages of 10 (unfiltered and by category) are exactly readAll", () =>
    Effect.gen(function* () {
      const expected = (yield* readAll()).map((e) => e.eventId)
      assert.strictEqual(expected.length, total)
      assert.deepStrictEqual((yield* walk({ limit: "10" })).ids, expected)
      const orders = (yield* readAll({ categories: ["Order"] })).map((e) => e.eventId)
      assert.deepStrictEqual((yield* walk({ limit: "10", category: "Order" })).ids, orders)
      assert.strictEqual((yield* getJson("/streams/Cart-2?limit=2")).events.length, 2)
    })
  )
})

// ---------------------------------------------------------------------------------------------------
// Prometheus text checker
// ---------------------------------------------------------------------------------------------------

const sampleLine =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/
const commentLine =
  /^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/

/** Each line is a `# HELP`/`# TYPE` comment or `name{labels} value`; one TYPE per name, before its samples. */
const assertPrometheus = (text: string) => {
  assert.isTrue(text.endsWith("\n"))
  const typed = new Set<string>()
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("#")) {
      assert.match(line, commentLine)
      const [, kind, name] = line.split(" ")
      if (kind === "TYPE") {
        assert.isFalse(typed.has(name!), `two TYPE lines for ${name}`)
        typed.add(name!)
      }
      continue
    }
    assert.match(line, sampleLine)
    const name = line.split(/[{ ]/)[0]!
    assert.isTrue(
      [name, name.replace(/_(bucket|sum|count)$/, "")].some((n) => typed.has(n)),
      `${name} sampled before its TYPE`
    )
  }
}

describe("Prometheus.render", () => {
  it("sanitizes names and escapes label values", () => {
    assert.strictEqual(Prometheus.metricName("9a.b-c"), "_9a_b_c")
    assert.strictEqual(Prometheus.labelName("__x"), "_x")
    assert.strictEqual(Prometheus.escapeLabelValue('a\\"\n'), 'a\\\\\\"\\n')
    assert.strictEqual(Prometheus.render([]), "")
  })
})

// compile-time: requirements follow the options
type Needs<L> = L extends Layer.Layer<any, any, infer R> ? R : never
const minimal = EventBrowserApi.layer({})
const _minimal: [Needs<typeof minimal>] extends [EventStore.EventStore | Projection.Registry] ? true : false = true
const withSagas = EventBrowserApi.layer({ sagas: [transfers] })
const _withSagas: SagaStore.SagaStore extends Needs<typeof withSagas> ? true : false = true
const untyped: EventBrowserApi.Options = {}
const fromVariable = EventBrowserApi.layer(untyped)
const _fromVariable: SagaStore.SagaStore extends Needs<typeof fromVariable> ? true : false = true
void [minimal, withSagas, fromVariable, _minimal, _withSagas, _fromVariable]
