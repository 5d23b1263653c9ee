/**
 * The data lifecycle admin endpoints of `EventBrowserApi` over memory stores: a stream's soft delete,
 * undelete, hard delete (with its snapshots) and truncation, and a data subject's erasure. Without the
 * admin token every one is a 401 that changes nothing; a deleted stream is a 409, an unknown one a 404,
 * hostile input a 400, never a 5xx; the endpoints are in `/openapi.json`.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as EventBrowserApi from "../../src/http/EventBrowserApi.js"
import * as KeyStore from "../../src/KeyStore.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import * as Personal from "../../src/Personal.js"
import * as Projection from "../../src/Projection.js"
import * as Snapshot from "../../src/Snapshot.js"
import * as Upcaster from "../../src/Upcaster.js"
import { uniqueCategory } from "../support/ids.js"

const token = "lifecycle-token"

const stores = Layer.mergeAll(
  MemoryEventStore.layer(),
  CheckpointStore.layerMemory,
  Projection.layerRegistry,
  Snapshot.layerMemory()
)

const world = EventBrowserApi.layerServer({ adminToken: Redacted.make(token) }).pipe(
  Layer.provideMerge(Layer.merge(stores, KeyStore.layerMemory)),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

const withoutKeys = EventBrowserApi.layerServer({ adminToken: Redacted.make(token) }).pipe(
  Layer.provideMerge(stores),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

const post = (path: string, withToken: string | null = token) =>
  Effect.flatMap(HttpClient.HttpClient, (client) =>
    client.execute(
      withToken === null
        ? HttpClientRequest.post(path)
        : HttpClientRequest.post(path).pipe(HttpClientRequest.bearerToken(withToken))
    )
  ).pipe(
    Effect.flatMap((response) =>
      Effect.map(response.json as Effect.Effect<any, unknown>, (body) => ({ status: response.status, body }))
    ),
    Effect.scoped
  )

/** A stream of `count` events, in a category of its own. */
const stream = (count: number) =>
  Effect.gen(function* () {
    const streamId = `${yield* uniqueCategory}-1`
    const store = yield* EventStore.EventStore
    for (let i = 0; i < count; i++) yield* store.append(streamId, [yield* Event.make({ type: "Noted", data: { i } })])
    return streamId
  })

/** The versions `readStream` returns, or the error's tag. */
const versions = (streamId: string, options: EventStore.ReadStreamOptions = {}) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    store.readStream(streamId, options).pipe(
      Stream.runCollect,
      Effect.map((events) => Chunk.toReadonlyArray(events).map((e) => e.version)),
      Effect.catchAll((error) => Effect.succeed(error._tag))
    )
  )

const Joined = Schema.TaggedStruct("Joined", {
  memberId: Schema.String,
  name: Personal.field(Schema.String, { subject: "memberId", erased: "(erased)" })
})

layer(world, { excludeTestServices: true })("EventBrowserApi lifecycle admin", (it) => {
  it.effect("without the token every operation is a 401 and changes nothing", () =>
    Effect.gen(function* () {
      const streamId = yield* stream(3)
      const keys = yield* KeyStore.KeyStore
      yield* keys.dataKey("kept")
      for (const path of [
        `/admin/streams/${streamId}/delete`,
        `/admin/streams/${streamId}/undelete`,
        `/admin/streams/${streamId}/hard-delete`,
        `/admin/streams/${streamId}/truncate?before=3`,
        `/admin/streams/${streamId}/archive`,
        `/admin/subjects/kept/erase`
      ]) {
        for (const given of [null, "wrong-token"]) {
          const answer = yield* post(path, given)
          assert.strictEqual(answer.status, 401, `${path} with ${given}: ${JSON.stringify(answer.body)}`)
        }
      }
      assert.deepStrictEqual(yield* versions(streamId), [1, 2, 3])
      assert.isFalse(yield* keys.isErased("kept"))
    })
  )

  it.effect("delete, undelete, truncate and hard delete a stream; a deleted stream is a 409", () =>
    Effect.gen(function* () {
      const streamId = yield* stream(4)
      const path = (action: string) => `/admin/streams/${streamId}/${action}`
      const snapshots = yield* Snapshot.SnapshotStore
      yield* snapshots.save({ streamId, version: 4, stateVersion: 1, state: { n: 4 }, takenAt: yield* DateTime.now })

      assert.deepStrictEqual(yield* post(path("delete")), { status: 200, body: { streamId, action: "delete" } })
      assert.strictEqual(yield* versions(streamId), "StreamDeleted")
      // again: nothing more to do
      assert.strictEqual((yield* post(path("delete"))).status, 200)
      const truncateDeleted = yield* post(path("truncate?before=2"))
      assert.strictEqual(truncateDeleted.status, 409)
      assert.deepStrictEqual([truncateDeleted.body._tag, truncateDeleted.body.hard], ["StreamConflict", false])
      assert.deepStrictEqual(yield* post(path("undelete")), { status: 200, body: { streamId, action: "undelete" } })
      assert.deepStrictEqual(yield* versions(streamId), [1, 2, 3, 4])

      assert.deepStrictEqual(yield* post(path("truncate?before=3")), {
        status: 200,
        body: { streamId, action: "truncate", removed: 2 }
      })
      assert.deepStrictEqual(yield* versions(streamId), [3, 4])

      assert.deepStrictEqual(yield* post(path("hard-delete")), {
        status: 200,
        body: { streamId, action: "hard-delete", snapshots: 1 }
      })
      assert.isTrue(Option.isNone(yield* snapshots.load(streamId)))
      for (const action of ["undelete", "delete", "truncate?before=2", "archive"]) {
        const answer = yield* post(path(action))
        assert.strictEqual(answer.status, 409, `${action}: ${JSON.stringify(answer.body)}`)
        assert.deepStrictEqual([answer.body._tag, answer.body.hard], ["StreamConflict", true])
      }
      assert.strictEqual((yield* post(path("hard-delete"))).status, 200)
    })
  )

  it.effect("archive a stream's first events, then the rest: out of reads, kept for reads of the archive", () =>
    Effect.gen(function* () {
      const streamId = yield* stream(4)
      const path = (action: string) => `/admin/streams/${streamId}/${action}`
      assert.deepStrictEqual(yield* post(path("archive?before=3")), {
        status: 200,
        body: { streamId, action: "archive", removed: 2 }
      })
      assert.deepStrictEqual(yield* versions(streamId), [3, 4])
      assert.deepStrictEqual(yield* versions(streamId, { includeArchived: true }), [1, 2, 3, 4])
      assert.deepStrictEqual(yield* post(path("archive")), {
        status: 200,
        body: { streamId, action: "archive", removed: 2 }
      })
      assert.deepStrictEqual(yield* versions(streamId), [])
      assert.deepStrictEqual(yield* versions(streamId, { includeArchived: true }), [1, 2, 3, 4])
    })
  )

  it.effect("an unknown stream is a 404; hostile input is a 400, never a 5xx", () =>
    Effect.gen(function* () {
      const unknown = `${yield* uniqueCategory}-404`
      for (const action of ["delete", "undelete", "hard-delete", "truncate?before=2", "archive"]) {
        const answer = yield* post(`/admin/streams/${unknown}/${action}`)
        assert.strictEqual(answer.status, 404, `${action}: ${JSON.stringify(answer.body)}`)
      }
      const streamId = yield* stream(2)
      for (const [path, status] of [
        [`/admin/streams/${streamId}/truncate`, 400],
        [`/admin/streams/${streamId}/truncate?before=0`, 400],
        [`/admin/streams/${streamId}/truncate?before=-1`, 400],
        [`/admin/streams/${streamId}/truncate?before=1.5`, 400],
        [`/admin/streams/${streamId}/truncate?before=abc`, 400],
        [`/admin/streams/${streamId}/truncate?before=1e400`, 400],
        [`/admin/streams/${streamId}/truncate?before=99999999999999999999`, 400],
        [`/admin/streams/${streamId}/archive?before=0`, 400],
        [`/admin/streams/${streamId}/archive?before=x`, 400],
        [`/admin/streams/nodash/delete`, 404],
        [`/admin/streams/a%00b-1/delete`, 400],
        // the router matches path parameters of at most 100 characters: a longer one is not found
        [`/admin/streams/${"x".repeat(300)}-1/hard-delete`, 404],
        [`/admin/subjects/%00/erase`, 400],
        [`/admin/subjects/a%01b/erase`, 400],
        [`/admin/subjects/${"s".repeat(256)}/erase`, 404],
        // not UTF-8: the router finds no route
        [`/admin/subjects/%ED%A0%80/erase`, 404]
      ] as const) {
        const answer = yield* post(path)
        assert.strictEqual(answer.status, status, `${path}: ${JSON.stringify(answer.body)}`)
      }
      assert.deepStrictEqual(yield* versions(streamId), [1, 2])
    })
  )

  it.effect("erasing a subject: its personal fields read as erased from then on", () =>
    Effect.gen(function* () {
      const subject = `m-${yield* uniqueCategory}`
      const codec = yield* Upcaster.codec({ events: Joined })
      const encoded = yield* codec.encode(Joined.make({ memberId: subject, name: "Mia Private" }))
      const streamId = `${yield* uniqueCategory}-1`
      const store = yield* EventStore.EventStore
      yield* store.append(streamId, [yield* Event.make(encoded)])
      const name = Upcaster.readStream(codec, streamId).pipe(
        Stream.runCollect,
        Effect.map((events) => Chunk.toReadonlyArray(events)[0]!.event.name)
      )
      assert.strictEqual(yield* name, "Mia Private")
      assert.deepStrictEqual(yield* post(`/admin/subjects/${subject}/erase`), {
        status: 200,
        body: { subject, erased: true }
      })
      assert.strictEqual(yield* name, "(erased)")
      assert.isTrue(yield* Effect.flatMap(KeyStore.KeyStore, (keys) => keys.isErased(subject)))
      // again, or a subject never seen: erased all the same
      assert.strictEqual((yield* post(`/admin/subjects/${subject}/erase`)).status, 200)
      assert.strictEqual((yield* post(`/admin/subjects/unseen-${subject}/erase`)).status, 200)
    })
  )

  it.effect("/openapi.json documents the lifecycle endpoints", () =>
    Effect.gen(function* () {
      const spec = yield* Effect.flatMap(HttpClient.HttpClient, (client) =>
        client.execute(HttpClientRequest.get("/openapi.json"))
      ).pipe(
        Effect.flatMap((response) => response.json as Effect.Effect<any, unknown>),
        Effect.scoped
      )
      assert.includeMembers(Object.keys(spec.paths), [
        "/admin/streams/{streamId}/delete",
        "/admin/streams/{streamId}/undelete",
        "/admin/streams/{streamId}/hard-delete",
        "/admin/streams/{streamId}/truncate",
        "/admin/streams/{streamId}/archive",
        "/admin/subjects/{subject}/erase"
      ])
      const responses = Object.keys(spec.paths["/admin/streams/{streamId}/truncate"].post.responses)
      assert.includeMembers(responses, ["200", "400", "401", "404", "409"])
    })
  )
})

layer(withoutKeys, { excludeTestServices: true })("EventBrowserApi lifecycle admin without a key store", (it) => {
  it.effect("erasing a subject is a 404 that says there is no key store", () =>
    Effect.gen(function* () {
      const answer = yield* post("/admin/subjects/anyone/erase")
      assert.strictEqual(answer.status, 404)
      assert.strictEqual(answer.body.resource, "keyStore")
    })
  )
})
