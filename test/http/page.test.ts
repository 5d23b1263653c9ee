/**
 * The event browser page in headless Chromium, against a live server over a memory store seeded with
 * hostile content: the page lists the log, pages through it, opens a stream, lists the runners, and
 * renders event content as text (an injected `<img onerror>` never runs).
 */
import { assert, describe, it } from "@effect/vitest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { createServer } from "node:http"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import * as EventBrowserApi from "../../src/http/EventBrowserApi.js"
import * as Projection from "../../src/Projection.js"
import * as Wakeup from "../../src/Wakeup.js"
import { browser } from "../support/chromium.js"

const hostile = `<img src=x onerror="window.__injected = true">`

const Noted = Schema.TaggedStruct("Noted", { note: Schema.String })
const Notes = Projection.make({ name: "notes", events: Noted, handle: () => Effect.void })

const stores = Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory, Projection.layerRegistry).pipe(
  Layer.provideMerge(Wakeup.layer)
)
const server = EventBrowserApi.layerServer({}).pipe(
  Layer.provideMerge(Projection.layer(Notes, { pollInterval: "50 millis" })),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0 })),
  Layer.provideMerge(stores)
)

const seed = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  for (let i = 0; i < 7; i++) {
    const event = yield* Event.make({ type: "Noted", data: { note: i === 3 ? hostile : `note ${i}` } })
    yield* store.append(i === 3 ? `Note-${hostile}` : `Note-${i % 2}`, [event])
  }
})

describe("event browser page (Chromium)", () => {
  it.scopedLive(
    "lists, pages, opens a stream and shows runners; event content stays text",
    () =>
      Effect.gen(function* () {
        yield* seed
        const { address } = yield* HttpServer.HttpServer
        assert(address._tag === "TcpAddress")
        const page = yield* Effect.flatMap(browser, (b) => Effect.promise(() => b.newPage()))
        const errors: Array<string> = []
        page.on("pageerror", (error) => errors.push(error.message))
        const run = <A>(f: () => Promise<A>) => Effect.promise(f)
        // polls from outside the page: its CSP forbids the string evaluation waitForFunction relies on
        const until = <A>(f: () => Promise<A>, done: (a: A) => boolean) =>
          run(f).pipe(
            Effect.filterOrFail(done, () => "not yet"),
            Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds")))
          )
        const streamColumn = () => page.locator("#events tr td:nth-child(3)").allTextContents()

        yield* run(() => page.goto(`http://127.0.0.1:${address.port}/`))
        yield* run(() => page.fill("#limit", "3"))
        yield* run(() => page.click("#filters button[type=submit]"))
        const firstPage = yield* until(streamColumn, (cells) => cells.length === 3)
        assert.deepStrictEqual(firstPage, ["Note-0", "Note-1", "Note-0"])

        yield* run(() => page.click("#next"))
        const secondPage = yield* until(streamColumn, (cells) => cells[0] !== "Note-0")
        assert.deepStrictEqual(secondPage, [`Note-${hostile}`, "Note-0", "Note-1"])

        // the hostile stream id and data are shown as text, and nothing was injected
        yield* run(() => page.click(`#events button.link >> text=Note-${hostile}`))
        yield* run(() => page.waitForSelector("#streamView:not(.hidden)"))
        const title = yield* run(() => page.textContent("#streamTitle"))
        assert.strictEqual(title, `Stream Note-${hostile}`)
        const content = yield* run(() => page.textContent("#streamEvents pre"))
        assert.include(content, JSON.stringify(hostile))
        assert.strictEqual(yield* run(() => page.evaluate("window.__injected")), undefined)
        assert.strictEqual(yield* run(() => page.locator("img").count()), 0)

        yield* run(() => page.click("#refreshRunners"))
        yield* until(
          () => page.locator("#runnerRows").textContent(),
          (text) => text?.includes("notes") === true
        )
        assert.deepStrictEqual(errors, [])
      }).pipe(
        // the browser closes before the server: the server's close waits for every open connection, and
        // the page, polling the runners, kept one busy (the test hung until its timeout, now and then)
        Effect.scoped,
        Effect.provide(server)
      ),
    60_000
  )
})
