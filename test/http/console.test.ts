/**
 * The operations console's endpoints of `EventBrowserApi` over memory stores: the live log (Server-Sent
 * Events resuming from `Last-Event-ID`), the runner samples, dead letters and their admin actions (refused
 * without the token, changing nothing), saga pages, time travel with a registered decider, the assets'
 * caching, and `/docs` served without any external resource. Hostile input is a 4xx, never a 5xx.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Aggregate from "../../src/Aggregate.js"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import * as EventBrowserApi from "../../src/http/EventBrowserApi.js"
import * as Projection from "../../src/Projection.js"
import * as Saga from "../../src/Saga.js"
import * as SagaStore from "../../src/SagaStore.js"

const token = "console-token"

// ---------------------------------------------------------------------------------------------------
// fixtures: a counter aggregate, a projection that gives up on `Bumped` events with a negative amount
// ---------------------------------------------------------------------------------------------------

const Bumped = Schema.TaggedStruct("Bumped", { by: Schema.Number })
const Reset = Schema.TaggedStruct("Reset", {})
const CounterEvent = Schema.Union(Bumped, Reset)
const CounterState = Schema.Struct({ total: Schema.Number, bumps: Schema.Number })

const Counter = Aggregate.make({
  category: "Counter",
  events: CounterEvent,
  initialState: { total: 0, bumps: 0 },
  evolve: (state, event) =>
    event._tag === "Bumped" ? { total: state.total + event.by, bumps: state.bumps + 1 } : { total: 0, bumps: 0 },
  decide: () => Effect.succeed([])
})

/** Whether the `picky` projection accepts negative bumps (a fix deployed before a retry). */
const fixed = Effect.runSync(Ref.make(false))
const attempts = Effect.runSync(Ref.make(0))

const picky = Projection.make({
  name: "picky",
  events: CounterEvent,
  onPoison: "skip",
  retry: Schedule.recurs(0),
  handle: (event) =>
    Effect.gen(function* () {
      if (event._tag !== "Bumped" || event.by >= 0) return
      yield* Ref.update(attempts, (n) => n + 1)
      if (!(yield* Ref.get(fixed))) return yield* Effect.fail(`cannot take ${event.by}`)
    })
})

const transfers = Saga.make({
  name: "transfers",
  events: Bumped,
  correlate: () => undefined,
  state: Schema.Struct({ step: Schema.String }),
  initialState: { step: "new" },
  commands: [],
  react: (state) => ({ state })
})

const bump = (streamId: string, by: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const event = yield* Event.make({ type: "Bumped", data: { by } })
    return yield* store.append(streamId, [event])
  })

const seed = Effect.gen(function* () {
  for (const by of [1, 2, -3, 4]) yield* bump("Counter-a", by)
  yield* bump("Counter-b", 10)
  const sagas = yield* SagaStore.SagaStore
  for (const id of ["t-1", "t-2", "t-3"]) {
    yield* sagas.save(
      "transfers",
      id,
      0,
      { status: id === "t-2" ? "completed" : "running", state: { step: id }, compensations: [], error: Option.none() },
      { schedule: [], cancel: [] }
    )
  }
})

const stores = Layer.mergeAll(
  MemoryEventStore.layer(),
  CheckpointStore.layerMemory,
  Projection.layerRegistry,
  SagaStore.layerMemory
)

const world = EventBrowserApi.layerServer({
  sagas: [transfers],
  projections: [picky],
  deciders: [EventBrowserApi.decider(Counter, { state: CounterState })],
  adminToken: Redacted.make(token),
  sampleInterval: "50 millis",
  sampleWindow: "1 second",
  livePollInterval: "20 millis"
}).pipe(
  Layer.provideMerge(Projection.layer(picky, { pollInterval: "20 millis" })),
  Layer.provideMerge(Layer.effectDiscard(seed)),
  Layer.provideMerge(stores),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

// ---------------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------------

const send = (request: HttpClientRequest.HttpClientRequest) =>
  Effect.flatMap(HttpClient.HttpClient, (client) => client.execute(request)).pipe(Effect.scoped)

const json = (response: HttpClientResponse.HttpClientResponse) => response.json as Effect.Effect<any, unknown>

const getJson = (url: string, status = 200) =>
  Effect.gen(function* () {
    const response = yield* send(HttpClientRequest.get(url))
    const body = yield* json(response)
    assert.strictEqual(response.status, status, `${url}: ${JSON.stringify(body)}`)
    return body
  })

const until = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(done, () => "not yet"),
    Effect.retry({ while: (e) => e === "not yet", schedule: Schedule.spaced("20 millis") }),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("condition not met in 10 seconds") })
  )

interface Frame {
  readonly id: string
  readonly event: any
}

/** The first `count` events of `GET /events/live` with these headers and query. */
const liveFrames = (query: string, count: number, headers: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(HttpClientRequest.get(`/events/live${query}`, { headers }))
    assert.strictEqual(response.status, 200)
    assert.match(response.headers["content-type"] ?? "", /^text\/event-stream/)
    const frames: Array<Frame> = []
    let buffer = ""
    yield* response.stream.pipe(
      Stream.decodeText(),
      Stream.runForEachWhile((text) =>
        Effect.sync(() => {
          buffer += text
          let end: number
          while ((end = buffer.indexOf("\n\n")) >= 0 && frames.length < count) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            const field = (name: string) =>
              block
                .split("\n")
                .find((line) => line.startsWith(`${name}: `))
                ?.slice(name.length + 2)
            if (field("event") === "event") frames.push({ id: field("id")!, event: JSON.parse(field("data")!) })
          }
          return frames.length < count
        })
      ),
      Effect.timeout("10 seconds")
    )
    return frames
  }).pipe(Effect.scoped)

const admin = (path: string, withToken: string | undefined) =>
  send(
    withToken === undefined
      ? HttpClientRequest.post(path)
      : HttpClientRequest.post(path).pipe(HttpClientRequest.bearerToken(withToken))
  )

// ---------------------------------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------------------------------

layer(world, { excludeTestServices: true })("EventBrowserApi console", (it) => {
  it.effect("the live log streams appended events and resumes after Last-Event-ID", () =>
    Effect.gen(function* () {
      const first = yield* liveFrames(`?after=${EventBrowserApi.encodeCursor({ transaction: 0n, position: 0n })}`, 5)
      assert.deepStrictEqual(
        first.map((f) => `${f.event.streamId}@${f.event.version}`),
        ["Counter-a@1", "Counter-a@2", "Counter-a@3", "Counter-a@4", "Counter-b@1"]
      )
      // a reconnect with the id of the second event gets the third on; the header wins over `after`
      const resumed = yield* liveFrames(`?after=${first[0]!.id}`, 2, { "last-event-id": first[1]!.id })
      assert.deepStrictEqual(
        resumed.map((f) => f.event.eventId),
        [first[2]!.event.eventId, first[3]!.event.eventId]
      )
      // without a position it starts at the head: only events appended after it connected, of the category
      const later = yield* Effect.fork(liveFrames("?category=Live", 2))
      let n = 0
      while (Option.isNone(yield* later.poll)) {
        n++
        yield* bump("Other-x", n)
        yield* bump("Live-x", n)
        yield* Effect.sleep("20 millis")
      }
      const tail = yield* Effect.flatten(later.await)
      assert.deepStrictEqual(
        tail.map((f) => f.event.streamId),
        ["Live-x", "Live-x"]
      )
      assert.strictEqual(tail[1]!.event.version, tail[0]!.event.version + 1)
    })
  )

  it.effect("hostile live-log positions and filters are 400", () =>
    Effect.gen(function* () {
      for (const [query, headers] of [
        ["?after=nope", {}],
        ["", { "last-event-id": "x".repeat(500) }],
        ["", { "last-event-id": "YWJj" }],
        ["?category=%00", {}],
        ["?type=", {}]
      ] as const) {
        const response = yield* send(HttpClientRequest.get(`/events/live${query}`, { headers }))
        assert.strictEqual(response.status, 400, `${query} ${JSON.stringify(headers)}`)
      }
    })
  )

  it.effect("the sampler keeps a bounded window of the runners' lag and throughput", () =>
    Effect.gen(function* () {
      const body = yield* until(getJson("/console/samples"), (b) => b.samples.length >= 20)
      assert.strictEqual(body.intervalSeconds, 0.05)
      // a 1-second window at 50 ms: at most 20 samples, however long it runs
      assert.isAtMost(body.samples.length, 20)
      const runner = body.samples.at(-1).runners.find((r: { name: string }) => r.name === "picky")
      assert.strictEqual(runner.version, 1)
      assert.isNumber(runner.lagEvents)
      assert.isNumber(runner.throughput)
      const info = yield* getJson("/console")
      assert.deepStrictEqual(info, {
        sagas: ["transfers"],
        projections: ["picky"],
        deciders: ["Counter"],
        admin: true,
        sampleIntervalSeconds: 0.05
      })
    })
  )

  it.effect("dead letters: refused without the token, changing nothing; retried and discarded with it", () =>
    Effect.gen(function* () {
      const letters = yield* until(getJson("/dead-letters"), (b) => b.deadLetters.length === 1)
      const letter = letters.deadLetters[0]
      assert.strictEqual(letter.projection.name, "picky")
      assert.strictEqual(letter.event.streamId, "Counter-a")
      assert.include(letter.error, "cannot take -3")
      const retry = `/admin/dead-letters/picky/${letter.id}/retry`
      const discard = `/admin/dead-letters/picky/${letter.id}/discard`
      const tried = yield* Ref.get(attempts)
      for (const path of [retry, discard]) {
        for (const given of [undefined, "wrong", `${token} `.trim() + "x"]) {
          const response = yield* admin(path, given)
          assert.strictEqual(response.status, 401, `${path} with ${given}`)
        }
      }
      yield* Effect.sleep("100 millis")
      assert.deepStrictEqual(yield* getJson("/dead-letters"), letters, "nothing changed")
      assert.strictEqual(yield* Ref.get(attempts), tried, "no retry ran")

      // the fix is deployed; the retry handles the event again and the letter goes
      yield* Ref.set(fixed, true)
      const ok = yield* admin(retry, token)
      assert.strictEqual(ok.status, 200)
      assert.deepStrictEqual(yield* json(ok), { projection: "picky", id: letter.id, action: "retry" })
      yield* until(getJson("/dead-letters"), (b) => b.deadLetters.length === 0)
      assert.isAbove(yield* Ref.get(attempts), tried)

      // a new letter, discarded
      yield* Ref.set(fixed, false)
      yield* bump("Counter-c", -1)
      const next = (yield* until(getJson("/dead-letters"), (b) => b.deadLetters.length === 1)).deadLetters[0]
      const gone = yield* admin(`/admin/dead-letters/picky/${next.id}/discard`, token)
      assert.strictEqual(gone.status, 200)
      assert.deepStrictEqual((yield* getJson("/dead-letters")).deadLetters, [])
      assert.strictEqual((yield* admin(`/admin/dead-letters/picky/${next.id}/discard`, token)).status, 404)
    })
  )

  it.effect("hostile dead-letter requests are 4xx, never 5xx", () =>
    Effect.gen(function* () {
      for (const [path, status] of [
        ["/admin/dead-letters/picky/abc/retry", 400],
        ["/admin/dead-letters/picky/-1/retry", 400],
        ["/admin/dead-letters/picky/0/retry", 400],
        ["/admin/dead-letters/picky/1.5/discard", 400],
        ["/admin/dead-letters/picky/1e400/discard", 400],
        ["/admin/dead-letters/picky/99999999999999999999/discard", 400],
        ["/admin/dead-letters/nope/1/retry", 404],
        ["/admin/dead-letters/picky/424242/retry", 404],
        ["/admin/dead-letters/%00/1/retry", 404]
      ] as const) {
        const response = yield* admin(path, token)
        assert.strictEqual(response.status, status, path)
      }
      assert.strictEqual((yield* getJson("/dead-letters?projection=nope", 404)).resource, "projection")
    })
  )

  it.effect("saga instances page by id, filtered by status", () =>
    Effect.gen(function* () {
      const all = yield* getJson("/sagas/transfers?limit=2")
      assert.deepStrictEqual(
        all.instances.map((i: { id: string }) => i.id),
        ["t-1", "t-2"]
      )
      assert.strictEqual(all.next, "t-2")
      const rest = yield* getJson(`/sagas/transfers?limit=2&after=${all.next}`)
      assert.deepStrictEqual(
        rest.instances.map((i: { id: string }) => i.id),
        ["t-3"]
      )
      assert.strictEqual(rest.next, null)
      const completed = yield* getJson("/sagas/transfers?status=completed")
      assert.deepStrictEqual(
        completed.instances.map((i: { id: string; status: string }) => [i.id, i.status]),
        [["t-2", "completed"]]
      )
      assert.strictEqual((yield* getJson("/sagas/nope", 404)).resource, "saga")
      yield* getJson("/sagas/transfers?status=lost", 400)
      yield* getJson("/sagas/transfers?after=%00", 400)
      yield* getJson("/sagas/transfers?limit=0", 400)
    })
  )

  it.effect("time travel: the state after each version, folded with the registered decider", () =>
    Effect.gen(function* () {
      const body = yield* getJson("/streams/Counter-a/states")
      assert.strictEqual(body.category, "Counter")
      assert.deepStrictEqual(body.initialState, { total: 0, bumps: 0 })
      assert.deepStrictEqual(
        body.steps.map((s: any) => [s.event.version, s.state, s.error]),
        [
          [1, { total: 1, bumps: 1 }, null],
          [2, { total: 3, bumps: 2 }, null],
          [3, { total: 0, bumps: 3 }, null],
          [4, { total: 4, bumps: 4 }, null]
        ]
      )
      // a page from version 3 folds the versions before it too
      const page = yield* getJson("/streams/Counter-a/states?fromVersion=3&limit=1")
      assert.deepStrictEqual(
        page.steps.map((s: any) => [s.event.version, s.state]),
        [[3, { total: 0, bumps: 3 }]]
      )
      assert.strictEqual(page.next, 4)
      assert.strictEqual((yield* getJson("/streams/Other-x/states", 404)).resource, "decider")
      assert.strictEqual((yield* getJson("/streams/Counter-none/states", 404)).resource, "stream")
      yield* getJson("/streams/Counter-a/states?fromVersion=0", 400)
      yield* getJson("/streams/Counter-a/states?limit=100000", 400)
      yield* getJson("/streams/%00/states", 400)
    })
  )

  it.effect("assets: content types, ETags and 304s; unknown names are 4xx", () =>
    Effect.gen(function* () {
      for (const [path, type] of [
        ["/", "text/html"],
        ["/assets/console.css", "text/css"],
        ["/assets/console.js", "text/javascript"]
      ] as const) {
        const response = yield* send(HttpClientRequest.get(path))
        assert.strictEqual(response.status, 200, path)
        assert.match(response.headers["content-type"] ?? "", new RegExp(`^${type}`), path)
        assert.strictEqual(response.headers["cache-control"], "no-cache", path)
        const etag = response.headers["etag"]!
        assert.match(etag, /^"[A-Za-z0-9_-]+"$/)
        const again = yield* send(HttpClientRequest.get(path, { headers: { "if-none-match": etag } }))
        assert.strictEqual(again.status, 304, path)
        assert.strictEqual(yield* again.text, "")
      }
      for (const path of ["/assets/secret.env", "/assets/..%2Fconsole.js", "/assets/%2e%2e%2fpackage.json"]) {
        const response = yield* send(HttpClientRequest.get(path))
        assert.isTrue(response.status >= 400 && response.status < 500, `${path}: ${response.status}`)
      }
    })
  )

  it.effect("/docs is the API reference with no external script, style or font", () =>
    Effect.gen(function* () {
      const response = yield* send(HttpClientRequest.get("/docs"))
      assert.strictEqual(response.status, 200)
      assert.match(response.headers["content-type"] ?? "", /^text\/html/)
      const html = yield* response.text
      assert.include(html, '"/events/live"')
      assert.notMatch(html, /<script[^>]*\ssrc=/)
      assert.notMatch(html, /<link[^>]*\shref=["']?(https?:)?\/\//)
    })
  )
})
