/**
 * Tenant isolation through every public way in: the store (shared, on memory, SQLite, PostgreSQL and
 * MariaDB; and one store per tenant), the command bus, projections and the HTTP event browser. Tenant A
 * never reads, appends to, projects or browses tenant B's streams, hostile stream ids included; without a
 * tenant every operation fails with a typed error.
 */
import { assert, describe, it } from "@effect/vitest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { createServer } from "node:http"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../src/CheckpointStore.js"
import * as CommandBus from "../src/CommandBus.js"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as EventBrowserApi from "../src/http/EventBrowserApi.js"
import * as Projection from "../src/Projection.js"
import * as SagaStore from "../src/SagaStore.js"
import * as Snapshot from "../src/Snapshot.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import * as Tenancy from "../src/Tenancy.js"
import * as Wakeup from "../src/Wakeup.js"
import { Accounts as AccountCommands, accountHandlers, Deposit, OpenAccount } from "./support/commands.js"
import { isolatedPrefix, uniqueCategory } from "./support/ids.js"
import { settle } from "./support/settle.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "./support/sql.js"

const schema = isolatedPrefix(import.meta.url)

const tick = (n: number) => Event.make({ type: "Ticked", data: { n }, metadata: { tenantId: "forged" } })
const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)
const as = (tenant: string) => Tenancy.withTenant(tenant)

const sharedStores = [
  ["memory", Tenancy.layerShared.pipe(Layer.provide(MemoryEventStore.layer()))],
  ["SQLite", Tenancy.layerShared.pipe(Layer.provide(SqlEventStore.layer()), Layer.provide(sqliteMemory))],
  [
    "PostgreSQL",
    Tenancy.layerShared.pipe(Layer.provide(SqlEventStore.layer({ schema })), Layer.provide(pgWithSchema(schema)))
  ],
  [
    "MariaDB",
    Tenancy.layerShared.pipe(
      Layer.provide(SqlEventStore.layer({ tablePrefix: `${schema}_` })),
      Layer.provide(mysqlWithPrefix(`${schema}_`))
    )
  ]
] as const

describe.each(sharedStores)("Tenancy: shared store on %s", (_, layer) => {
  it.live("each tenant sees its own streams only, under the ids it gave, hostile ids included", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const c = yield* uniqueCategory
      yield* as("a")(store.append(`${c}-1`, [yield* tick(1)]))
      yield* as("b")(store.append(`${c}-1`, [yield* tick(2)]))
      // an id that looks like another tenant's stored one stays in its own tenant
      yield* as("a")(store.append(`b~${c}-1`, [yield* tick(3)]))
      const readA = yield* as("a")(collect(store.readStream(`${c}-1`)))
      assert.deepStrictEqual(
        readA.map((e) => [e.streamId, e.category, (e.data as { n: number }).n, e.metadata.tenantId]),
        [[`${c}-1`, c, 1, "a"]]
      )
      assert.deepStrictEqual(
        (yield* as("b")(collect(store.readStream(`${c}-1`)))).map((e) => (e.data as { n: number }).n),
        [2]
      )
      assert.strictEqual(yield* as("b")(store.streamVersion(`${c}-1`)), 1)
      // on PostgreSQL, global reads see commits once older transactions (other tests') are done
      yield* as("settle")(settle)
      const allA = yield* as("a")(collect(store.readAll()))
      assert.deepStrictEqual(allA.map((e) => (e.data as { n: number }).n).sort(), [1, 3])
      assert.isTrue(allA.every((e) => !e.streamId.startsWith("a~")))
      const allB = yield* as("b")(collect(store.readAll({ categories: [c] })))
      assert.deepStrictEqual(
        allB.map((e) => (e.data as { n: number }).n),
        [2]
      )
      const missing = yield* Effect.flip(as("b")(collect(store.readStream(`b~${c}-1`))))
      assert.strictEqual(missing._tag, "StreamNotFound")
    }).pipe(Effect.provide(layer))
  )

  it.live("unique values, command ids and conflicts are per tenant, and errors name the tenant's own ids", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const c = yield* uniqueCategory
      const email = { constraint: "email", value: `${c}@example.com` }
      yield* as("a")(store.append(`${c}-1`, [yield* tick(1)], { claims: [email], commandId: `cmd-${c}` }))
      // the same value and command id in another tenant are that tenant's own
      yield* as("b")(store.append(`${c}-1`, [yield* tick(2)], { claims: [email], commandId: `cmd-${c}` }))
      const taken = yield* Effect.flip(as("a")(store.append(`${c}-2`, [yield* tick(3)], { claims: [email] })))
      assert.strictEqual(taken._tag, "UniqueConstraintViolation")
      if (taken._tag === "UniqueConstraintViolation") assert.strictEqual(taken.owner, `${c}-1`)
      const conflict = yield* Effect.flip(
        as("a")(store.append(`${c}-1`, [yield* tick(4)], { expectedVersion: Event.NoStream }))
      )
      assert.strictEqual(conflict._tag, "ConcurrencyConflict")
      if (conflict._tag === "ConcurrencyConflict") assert.strictEqual(conflict.streamId, `${c}-1`)
      const record = yield* as("b")(store.findCommand(`cmd-${c}`))
      assert.isTrue(Option.isSome(record) && record.value.streamId === `${c}-1`)
    }).pipe(Effect.provide(layer))
  )

  it.live("without a tenant, or with an invalid one, nothing is read or written", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const c = yield* uniqueCategory
      const append = yield* Effect.flip(store.append(`${c}-1`, [yield* tick(1)]))
      assert.strictEqual(append._tag, "EventStoreError")
      assert.strictEqual((append as EventStore.EventStoreError).cause instanceof Tenancy.TenantRequired, true)
      assert.strictEqual((yield* Effect.flip(collect(store.readAll())))._tag, "EventStoreError")
      assert.strictEqual((yield* Effect.flip(store.streamVersion(`${c}-1`)))._tag, "EventStoreError")
      for (const bad of ["", "A", "a-b", "a~b", "x".repeat(64)]) {
        assert.strictEqual((yield* Effect.flip(as(bad)(store.streamVersion(`${c}-1`))))._tag, "InvalidTenant")
      }
    }).pipe(Effect.provide(layer))
  )
})

describe("Tenancy: a store per tenant", () => {
  it.live("each tenant gets its own store, built once", () =>
    Effect.gen(function* () {
      const built = yield* Ref.make<ReadonlyArray<string>>([])
      const layer = Tenancy.layerPerTenant((tenant) =>
        Layer.effect(
          EventStore.EventStore,
          Effect.zipRight(
            Ref.update(built, (all) => [...all, tenant]),
            MemoryEventStore.make()
          )
        )
      )
      yield* Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        yield* as("a")(store.append("Account-1", [yield* tick(1)]))
        yield* as("a")(store.append("Account-1", [yield* tick(2)]))
        yield* as("b")(store.append("Account-1", [yield* tick(3)]))
        assert.strictEqual(yield* as("a")(store.streamVersion("Account-1")), 2)
        assert.strictEqual(yield* as("b")(store.streamVersion("Account-1")), 1)
        const events = yield* as("b")(collect(store.readAll()))
        assert.deepStrictEqual(
          events.map((e) => e.metadata.tenantId),
          ["b"]
        )
        assert.strictEqual((yield* Effect.flip(store.streamVersion("Account-1")))._tag, "EventStoreError")
      }).pipe(Effect.provide(layer))
      assert.deepStrictEqual(yield* Ref.get(built), ["a", "b"])
    })
  )
})

const world = Layer.mergeAll(
  CommandBus.layer({ groups: [AccountCommands], middleware: [Tenancy.commandMiddleware] }).pipe(
    Layer.provide(accountHandlers())
  ),
  Projection.layerRegistry,
  Tenancy.layerScopedCheckpoints.pipe(Layer.provide(CheckpointStore.layerMemory))
).pipe(
  Layer.provideMerge(Tenancy.layerShared),
  Layer.provideMerge(MemoryEventStore.layer()),
  Layer.provideMerge(Wakeup.layer)
)

const Opened = Schema.TaggedStruct("AccountOpened", { owner: Schema.String })

describe("Tenancy: command bus and projections", () => {
  it.live("a command runs in the tenant of its context; without one, or for another, it is refused", () =>
    Effect.gen(function* () {
      const bus = yield* CommandBus.CommandBus
      const store = yield* EventStore.EventStore
      yield* as("a")(bus.dispatch(new OpenAccount({ accountId: "x1", owner: "Ada" })))
      yield* as("b")(bus.dispatch(new OpenAccount({ accountId: "x1", owner: "Bob" })))
      yield* as("a")(bus.dispatch(new Deposit({ accountId: "x1", amount: 5 })))
      assert.strictEqual(yield* as("a")(store.streamVersion("Account-x1")), 2)
      assert.strictEqual(yield* as("b")(store.streamVersion("Account-x1")), 1)
      const none = yield* Effect.flip(bus.dispatch(new Deposit({ accountId: "x1", amount: 5 })))
      assert.strictEqual(none._tag, "Unauthorized")
      // a caller of tenant a naming tenant b in its command context
      const crossing = yield* Effect.flip(
        as("a")(
          bus.dispatch(new Deposit({ accountId: "x1", amount: 5 })).pipe(Event.withCommandContext({ tenantId: "b" }))
        )
      )
      assert.strictEqual(crossing._tag, "Unauthorized")
      assert.strictEqual(yield* as("b")(store.streamVersion("Account-x1")), 1)
      // one command id in two tenants, on a same-named stream: two distinct events
      const commandId = crypto.randomUUID()
      for (const tenant of ["a", "b"]) {
        yield* as(tenant)(
          bus
            .dispatch(new OpenAccount({ accountId: "y1", owner: tenant }))
            .pipe(Event.withCommandContext({ commandId, tenantId: tenant }))
        )
      }
      const [ofA] = yield* as("a")(collect(store.readStream("Account-y1")))
      const [ofB] = yield* as("b")(collect(store.readStream("Account-y1")))
      assert.notStrictEqual(ofA!.eventId, ofB!.eventId)
      // code running for a tenant (a saga, say) that sets a command context of its own stays in its tenant
      yield* as("b")(
        bus.dispatch(new Deposit({ accountId: "x1", amount: 1 })).pipe(Event.withCommandContext({ correlationId: "c" }))
      )
      assert.strictEqual(yield* as("b")(store.streamVersion("Account-x1")), 2)
      assert.strictEqual(yield* as("a")(store.streamVersion("Account-x1")), 2)
    }).pipe(Effect.provide(world))
  )

  it.live("the same projection runs per tenant, with its own checkpoints, over its tenant's events", () =>
    Effect.gen(function* () {
      const bus = yield* CommandBus.CommandBus
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const owners = Projection.make({
        name: "owners",
        events: Opened,
        categories: ["Account"],
        handle: (event) => Ref.update(seen, (all) => [...all, event.owner])
      })
      // b's event comes first in the log: a checkpoint shared with a would skip it
      yield* as("b")(bus.dispatch(new OpenAccount({ accountId: "p1", owner: "Bob" })))
      yield* as("a")(bus.dispatch(new OpenAccount({ accountId: "p1", owner: "Ada" })))
      yield* as("a")(Projection.catchUp(owners))
      assert.deepStrictEqual(yield* Ref.get(seen), ["Ada"])
      yield* as("b")(Projection.catchUp(owners))
      assert.deepStrictEqual(yield* Ref.get(seen), ["Ada", "Bob"])
      // tenant a's checkpoint is past its event: catching up again handles nothing
      yield* as("a")(Projection.catchUp(owners))
      assert.deepStrictEqual(yield* Ref.get(seen), ["Ada", "Bob"])
    }).pipe(Effect.provide(world))
  )
})

describe("Tenancy: saga store", () => {
  it.effect("instances and timeouts of one saga are per tenant", () =>
    Effect.gen(function* () {
      const store = Tenancy.scopedSagas(yield* SagaStore.makeMemory)
      const next = { status: "running" as const, state: { step: 1 }, compensations: [], error: Option.none() }
      yield* as("a")(store.save("transfer", "t1", 0, next, { schedule: [{ name: "deadline", dueAt: 0 }], cancel: [] }))
      assert.isTrue(Option.isSome(yield* as("a")(store.load("transfer", "t1"))))
      assert.isTrue(Option.isNone(yield* as("b")(store.load("transfer", "t1"))))
      assert.strictEqual((yield* as("a")(store.due("transfer", 10))).length, 1)
      assert.strictEqual((yield* as("b")(store.due("transfer", 10))).length, 0)
      // the same instance id in tenant b is b's own, from version 0
      assert.strictEqual(yield* as("b")(store.save("transfer", "t1", 0, next, { schedule: [], cancel: [] })), 1)
      assert.strictEqual((yield* Effect.flip(store.load("transfer", "t1")))._tag, "SagaStoreError")
      assert.deepStrictEqual(
        (yield* as("a")(store.instances("transfer"))).map((i) => [i.id, i.version]),
        [["t1", 1]]
      )
      assert.strictEqual((yield* as("c")(store.instances("transfer"))).length, 0)
    })
  )
})

describe("Tenancy: operators' checkpoint store operations", () => {
  it.effect(
    "a tenant lists its own projections; the operator, on the raw store, sees <tenant>~<name> and acts by it",
    () =>
      Effect.gen(function* () {
        const raw = yield* CheckpointStore.makeMemory
        const store = Tenancy.scopedCheckpoints(raw)
        const id = { name: "owners", version: 1 }
        yield* as("a")(store.register(id, 2))
        yield* as("b")(store.register(id, 1))
        assert.deepStrictEqual(yield* as("a")(store.projections), [
          { id, partitions: 2, active: false, pendingRebuild: false }
        ])
        assert.deepStrictEqual(
          (yield* raw.projections).map((p) => p.id.name),
          ["a~owners", "b~owners"]
        )
        assert.strictEqual((yield* Effect.flip(store.projections))._tag, "CheckpointStoreError")
        // the operator's request, by the stored name, reaches tenant a's runners only
        yield* raw.requestRebuild({ name: "a~owners", version: 1 })
        assert.isFalse(yield* as("b")(store.takeRebuild(id)))
        assert.isTrue(yield* as("a")(store.takeRebuild(id)))
        const missing = yield* Effect.flip(as("c")(store.requestRebuild(id)))
        assert.deepStrictEqual(missing, new CheckpointStore.ProjectionNotFound({ projection: "owners", version: 1 }))
        // dead letters: a tenant retries and discards its own only, by the names it knows
        const event = yield* Event.make({ type: "Opened", data: {} })
        const letter = {
          projection: id,
          partition: 0,
          event: {
            ...event,
            metadata: {},
            streamId: yield* Event.streamId("Account-1"),
            category: "Account",
            version: 1,
            position: 1n,
            transaction: 1n,
            recordedAt: DateTime.unsafeMake(0)
          },
          error: "boom",
          at: DateTime.unsafeMake(0)
        }
        yield* as("b")(store.deadLetter(letter))
        const [stored] = yield* raw.deadLetters("b~owners")
        const foreign = yield* Effect.flip(as("a")(store.retryDeadLetter("owners", stored!.id)))
        assert.deepStrictEqual(
          foreign,
          new CheckpointStore.DeadLetterNotFound({ projection: "owners", id: stored!.id })
        )
        yield* raw.retryDeadLetter("b~owners", stored!.id)
        assert.deepStrictEqual(yield* as("a")(store.retriesRequested(id)), [])
        const [asked] = yield* as("b")(store.retriesRequested(id))
        assert.deepStrictEqual([asked!.id, asked!.projection], [stored!.id, id])
        assert.isTrue(yield* as("b")(store.takeRetry("owners", stored!.id)))
      })
  )
})

describe("Tenancy: snapshots", () => {
  it.effect("a tenant never loads another's snapshot of a same-named stream", () =>
    Effect.gen(function* () {
      const store = Tenancy.scopedSnapshots(yield* Snapshot.makeMemory())
      const takenAt = yield* DateTime.now
      yield* as("a")(store.save({ streamId: "Account-1", version: 5, stateVersion: 1, state: { a: 1 }, takenAt }))
      const mine = yield* as("a")(store.load("Account-1"))
      assert.isTrue(Option.isSome(mine) && mine.value.streamId === "Account-1")
      assert.isTrue(Option.isNone(yield* as("b")(store.load("Account-1"))))
      assert.strictEqual((yield* Effect.flip(store.load("Account-1")))._tag, "SnapshotStoreError")
      // deleting is the tenant's too
      yield* as("b")(store.save({ streamId: "Account-1", version: 5, stateVersion: 1, state: { b: 1 }, takenAt }))
      assert.strictEqual(yield* as("a")(store.deleteStream("Account-1")), 1)
      assert.isTrue(Option.isNone(yield* as("a")(store.load("Account-1"))))
      assert.isTrue(Option.isSome(yield* as("b")(store.load("Account-1"))))
    })
  )
})

describe("Tenancy: HTTP event browser", () => {
  const server = EventBrowserApi.layerServer({ tenantHeader: "x-tenant-id" }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0 })),
    Layer.provideMerge(Projection.layerRegistry),
    Layer.provideMerge(Tenancy.layerScopedCheckpoints.pipe(Layer.provide(CheckpointStore.layerMemory))),
    Layer.provideMerge(Wakeup.layer),
    Layer.provideMerge(Tenancy.layerShared),
    Layer.provideMerge(MemoryEventStore.layer())
  )

  it.scopedLive("a request browses the tenant of its header only; without one it is refused", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* as("a")(store.append("Note-1", [yield* tick(1)]))
      yield* as("b")(store.append("Note-1", [yield* tick(2)]))
      yield* as("b")(store.append("Note-2", [yield* tick(3)]))
      // one runner of the same projection per tenant
      const notes = Projection.make({
        name: "notes",
        events: Schema.TaggedStruct("Ticked", { n: Schema.Number }),
        handle: () => Effect.void
      })
      for (const tenant of ["a", "b"]) yield* Effect.forkScoped(as(tenant)(Projection.run(notes)))
      const { address } = yield* HttpServer.HttpServer
      assert(address._tag === "TcpAddress")
      const get = (path: string, tenant?: string) =>
        Effect.promise(() =>
          fetch(`http://127.0.0.1:${address.port}${path}`, {
            headers: tenant === undefined ? {} : { "x-tenant-id": tenant }
          }).then(async (response) => ({ status: response.status, body: (await response.json()) as any }))
        )
      const a = yield* get("/events", "a")
      assert.strictEqual(a.status, 200)
      assert.deepStrictEqual(
        a.body.events.map((e: { streamId: string }) => e.streamId),
        ["Note-1"]
      )
      const b = yield* get("/events", "b")
      assert.deepStrictEqual(
        b.body.events.map((e: { data: { n: number } }) => e.data.n),
        [2, 3]
      )
      assert.strictEqual((yield* get("/streams/Note-2", "a")).status, 404)
      assert.strictEqual((yield* get(`/streams/${encodeURIComponent("b~Note-2")}`, "a")).status, 404)
      const runners = yield* get("/projections", "a")
      assert.strictEqual(runners.status, 200)
      assert.strictEqual(runners.body.projections.length, 1, "tenant a sees its own runner only")
      assert.strictEqual((yield* get("/events")).status, 400)
      assert.strictEqual((yield* get("/events", "B-")).status, 400)
    }).pipe(Effect.provide(server))
  )
})
