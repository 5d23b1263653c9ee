/**
 * QueryBus: queries answered from a read model, in process, over HTTP (`QueryApi`, typed client) and over
 * NATS (`NatsQueryTransport`): the same answers and typed failures everywhere; bad input refused before any
 * handler runs; read-your-writes (`readAfter`) sees the write every time, or fails with `ProjectionBehind`.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as CheckpointStore from "../src/CheckpointStore.js"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as QueryApi from "../src/http/QueryApi.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Nats from "../src/nats/Nats.js"
import * as NatsQueryTransport from "../src/nats/NatsQueryTransport.js"
import * as Projection from "../src/Projection.js"
import * as QueryBus from "../src/QueryBus.js"
import { natsUrl } from "./support/config.js"

// ---------------------------------------------------------------------------------------------------
// a read model of notes, kept by a slow projection
// ---------------------------------------------------------------------------------------------------

const Noted = Schema.TaggedStruct("Noted", { text: Schema.String })
const notes = new Map<string, string>()

const NotesProjection = Projection.make({
  name: "notes",
  events: Noted,
  categories: ["Note"],
  handleBatch: (batch) =>
    Effect.zipRight(
      Effect.sleep("20 millis"),
      Effect.sync(() => batch.forEach((d) => notes.set(d.envelope.streamId.slice("Note-".length), d.event.text)))
    )
})

class NoteNotFound extends Schema.TaggedError<NoteNotFound>()(
  "NoteNotFound",
  { noteId: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

const NoteId = Schema.String.pipe(Schema.pattern(/^[a-z0-9]{1,20}$/))
const Note = Schema.Struct({ noteId: Schema.String, text: Schema.String })

class GetNote extends Schema.TaggedRequest<GetNote>()("GetNote", {
  failure: NoteNotFound,
  success: Note,
  payload: { noteId: NoteId }
}) {}

class ListNotes extends Schema.TaggedRequest<ListNotes>()("ListNotes", {
  failure: Schema.Never,
  success: Schema.Array(Note),
  payload: { startsWith: Schema.optional(Schema.String.pipe(Schema.maxLength(20))) }
}) {}

const NoteQueries = QueryBus.group(GetNote, ListNotes)

const handlers = NoteQueries.toLayer({
  GetNote: ({ noteId }) => {
    const text = notes.get(noteId)
    return text === undefined ? Effect.fail(new NoteNotFound({ noteId })) : Effect.succeed({ noteId, text })
  },
  ListNotes: ({ startsWith }) =>
    Effect.succeed(
      [...notes]
        .filter(([id]) => startsWith === undefined || id.startsWith(startsWith))
        .map(([noteId, text]) => ({ noteId, text }))
    )
})

const stores = Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory)

const bus = QueryBus.layer({ groups: [NoteQueries], projections: [NotesProjection] }).pipe(
  Layer.provide(handlers),
  Layer.provideMerge(stores)
)

/** Writes a note (and returns the `readAfter` of the write). */
const write = (noteId: string, text: string) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const result = yield* store.append(`Note-${noteId}`, [yield* Event.make({ type: "Noted", data: { text } })])
    return QueryBus.readAfter(result)
  })

const runProjection = Effect.fork(Projection.run(NotesProjection, { pollInterval: "10 millis" }))

// ---------------------------------------------------------------------------------------------------
// in process
// ---------------------------------------------------------------------------------------------------

describe("QueryBus in process", () => {
  it.live("answers typed, refuses bad input, and fails with the query's own failure", () =>
    Effect.gen(function* () {
      const runner = yield* runProjection
      const after = yield* write("a1", "hello")
      const found = yield* QueryBus.ask(new GetNote({ noteId: "a1" }), { readAfter: after })
      assert.deepStrictEqual(found, { noteId: "a1", text: "hello" })
      const missing = yield* Effect.flip(QueryBus.ask(new GetNote({ noteId: "nobody" })))
      assert.instanceOf(missing, NoteNotFound)
      const invalid = yield* Effect.flip(QueryBus.ask(new GetNote({ noteId: "NOT VALID" }, true)))
      assert(invalid._tag === "QueryValidationError")
      assert.strictEqual(invalid.reason, "InvalidQuery")
      const excess = yield* Effect.flip(QueryBus.ask(new GetNote({ noteId: "a1", admin: true } as never, true)))
      assert.strictEqual(excess._tag, "QueryValidationError")
      yield* Fiber.interrupt(runner)
    }).pipe(Effect.provide(bus))
  )

  it.live("readAfter: the answer shows the write every time; a stopped projection is ProjectionBehind", () =>
    Effect.gen(function* () {
      const runner = yield* runProjection
      for (let i = 0; i < 10; i++) {
        const after = yield* write(`r${i % 3}`, `text ${i}`)
        const note = yield* QueryBus.ask(new GetNote({ noteId: `r${i % 3}` }), { readAfter: after })
        assert.strictEqual(note.text, `text ${i}`)
      }
      const unknown = yield* Effect.flip(
        QueryBus.ask(new ListNotes({}), { readAfter: { ...(yield* write("u", "x")), projections: ["nope"] } })
      )
      assert(unknown._tag === "QueryValidationError")
      assert.strictEqual(unknown.reason, "InvalidReadAfter")
      yield* Fiber.interrupt(runner)
      const late = yield* write("late", "never seen")
      const behind = yield* Effect.flip(
        QueryBus.ask(new GetNote({ noteId: "late" }), { readAfter: { ...late, timeoutMillis: 100 } })
      )
      assert.strictEqual(behind._tag, "ProjectionBehind")
    }).pipe(Effect.provide(bus))
  )

  it.effect("a group without one of its handlers fails the Layer", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(
          NoteQueries.toLayer({ GetNote: () => Effect.die("unused") } as unknown as QueryBus.Handlers<
            GetNote | ListNotes,
            never
          >)
        )
      )
      assert.include(error.message, "no handler for ListNotes")
    }).pipe(Effect.scoped)
  )
})

// ---------------------------------------------------------------------------------------------------
// over HTTP
// ---------------------------------------------------------------------------------------------------

const NotesApi = QueryApi.group("notes", NoteQueries, {
  idField: "noteId",
  path: "/notes",
  endpoints: { GetNote: { path: "" }, ListNotes: { path: "" } }
})

class Api extends HttpApi.make("test").add(NotesApi) {}

const served = HttpApiBuilder.serve().pipe(
  Layer.provide(HttpApiBuilder.api(Api)),
  Layer.provide(QueryApi.layer(Api, "notes")),
  Layer.provideMerge(bus),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

const get = (path: string) =>
  Effect.gen(function* () {
    const response = yield* (yield* HttpClient.HttpClient).execute(HttpClientRequest.get(path))
    return { status: response.status, text: yield* response.text }
  }).pipe(Effect.scoped, Effect.orDie)

describe("QueryApi", () => {
  it.live("the typed client: answers, failures with their statuses, read-after, and bad input is a 400", () =>
    Effect.gen(function* () {
      const runner = yield* runProjection
      const client = yield* HttpApiClient.make(Api)
      for (let i = 0; i < 5; i++) {
        const after = yield* write("h1", `http ${i}`)
        const note = yield* client.notes.getNote({ path: { noteId: "h1" }, headers: { "read-after": after } })
        assert.strictEqual(note.text, `http ${i}`)
      }
      const listed = yield* client.notes.listNotes({ urlParams: { startsWith: "h" }, headers: {} })
      assert.deepStrictEqual(listed, [{ noteId: "h1", text: "http 4" }])
      const missing = yield* Effect.flip(client.notes.getNote({ path: { noteId: "nobody" }, headers: {} }))
      assert.instanceOf(missing, NoteNotFound)

      assert.strictEqual((yield* get("/notes/nobody")).status, 404)
      assert.strictEqual((yield* get("/notes/NOT%20VALID")).status, 400)
      assert.strictEqual((yield* get("/notes?startsWith=h&admin=1")).status, 400)
      assert.strictEqual((yield* get("/notes/h1?x=1")).status, 400)
      assert.strictEqual((yield* get(`/notes?startsWith=${"x".repeat(30)}`)).status, 400)

      const late = yield* write("h2", "late")
      yield* Fiber.interrupt(runner)
      const behind = yield* Effect.flip(
        client.notes.getNote({
          path: { noteId: "h2" },
          headers: { "read-after": { ...late, projections: ["notes"], timeoutMillis: 100 } }
        })
      )
      assert.strictEqual(behind._tag, "ProjectionBehind")
    }).pipe(Effect.provide(served))
  )

  it.effect("the Layer refuses a bus that does not answer one of the group's queries", () =>
    Effect.gen(function* () {
      const Partial = QueryBus.group(GetNote)
      const partialBus = QueryBus.layer({ groups: [Partial] }).pipe(
        Layer.provide(Partial.toLayer({ GetNote: ({ noteId }) => Effect.succeed({ noteId, text: "" }) })),
        Layer.provideMerge(stores)
      )
      const error = yield* Layer.build(QueryApi.layer(Api, "notes")).pipe(
        Effect.provide(partialBus),
        Effect.provide(HttpApiBuilder.Router.Live),
        Effect.scoped,
        Effect.flip
      )
      assert.strictEqual(error._tag, "QueryBusConfigError")
      assert.include(error.message, "the bus does not answer ListNotes")
    })
  )

  it("a wrong field does not type-check", () => {
    const typed = Effect.gen(function* () {
      const client = yield* HttpApiClient.make(Api)
      // @ts-expect-error: GetNote's id is `noteId`
      yield* client.notes.getNote({ path: { id: "x" }, headers: {} })
      // @ts-expect-error: ListNotes has no `limit`
      yield* client.notes.listNotes({ urlParams: { limit: 1 }, headers: {} })
      // @ts-expect-error: a read-after needs the stream's version
      yield* client.notes.getNote({ path: { noteId: "x" }, headers: { "read-after": { streamId: "Note-x" } } })
    })
    assert.isDefined(typed)
  })
})

// ---------------------------------------------------------------------------------------------------
// over NATS
// ---------------------------------------------------------------------------------------------------

describe("NatsQueryTransport", () => {
  it.live("a client asks over NATS: the same answers, failures and read-your-writes", () =>
    Effect.gen(function* () {
      const subjectPrefix = `queries-test-${process.pid}-${Math.floor(Math.random() * 1e9)}`
      const server = NatsQueryTransport.serve({ subjectPrefix }).pipe(Layer.provide(Nats.layer({ servers: natsUrl })))
      const client = NatsQueryTransport.layerClient({ subjectPrefix, groups: [NoteQueries] }).pipe(
        Layer.provide(Nats.layer({ servers: natsUrl }))
      )
      yield* Effect.gen(function* () {
        yield* Layer.build(server)
        const remote = Context.get(yield* Layer.build(client), QueryBus.QueryBus)
        const runner = yield* runProjection
        for (let i = 0; i < 5; i++) {
          const after = yield* write("n1", `nats ${i}`)
          const note = yield* remote.ask(new GetNote({ noteId: "n1" }), { readAfter: after })
          assert.strictEqual(note.text, `nats ${i}`)
        }
        const missing = yield* Effect.flip(remote.ask(new GetNote({ noteId: "nobody" })))
        assert.instanceOf(missing, NoteNotFound)
        const invalid = yield* Effect.flip(remote.ask(new GetNote({ noteId: "NOT VALID" }, true)))
        assert.strictEqual(invalid._tag, "QueryValidationError")
        yield* Fiber.interrupt(runner)
        const late = yield* write("n2", "late")
        const behind = yield* Effect.flip(
          remote.ask(new GetNote({ noteId: "n2" }), { readAfter: { ...late, timeoutMillis: 100 } })
        )
        assert.strictEqual(behind._tag, "ProjectionBehind")
      }).pipe(Effect.scoped)
    }).pipe(Effect.provide(bus))
  )
})
