import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Deferred from "effect/Deferred"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../src/CheckpointStore.js"
import * as CommandBus from "../src/CommandBus.js"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Saga from "../src/Saga.js"
import * as SagaStore from "../src/SagaStore.js"
import * as Postgres from "../src/pg/Postgres.js"
import * as SqlCheckpointStore from "../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import * as SqlSagaStore from "../src/sql/SqlSagaStore.js"
import * as Wakeup from "../src/Wakeup.js"
import { makeTransfer, TransferEvent } from "../examples/bank/Transfer.js"
import { type TableOptions, tables } from "../src/sql/migrations.js"
import {
  accountHandlers,
  Accounts,
  Deposit,
  OpenAccount,
  Probe,
  Probes,
  probeHandlers,
  Withdraw
} from "./support/commands.js"
import { isolatedPrefix, uniqueCategory } from "./support/ids.js"
import { throwawayPostgres } from "./support/servers.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "./support/sql.js"

const transferSaga = (category: string, deadline: Duration.DurationInput = "300 millis") =>
  makeTransfer({ name: `transfer-${category}`, category: `${category}Transfer`, deadline })

/** Where a suite run keeps its events, checkpoints and saga instances. */
interface Backend {
  readonly name: string
  readonly stores: () => Layer.Layer<
    EventStore.EventStore | CheckpointStore.CheckpointStore | Wakeup.Wakeup | SqlClient.SqlClient
  >
  readonly sagaStore: Effect.Effect<SagaStore.SagaStore["Type"], unknown, SqlClient.SqlClient>
  /** Where the SQL saga store keeps its tables. */
  readonly tableOptions?: TableOptions
}

const schema = isolatedPrefix(import.meta.url)

const backends: ReadonlyArray<Backend> = [
  {
    name: "memory",
    // no SqlClient is needed by memory stores; SQLite stands in for the type
    stores: () =>
      Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory).pipe(
        Layer.provideMerge(Wakeup.layer),
        Layer.provideMerge(sqliteMemory)
      ),
    sagaStore: SagaStore.makeMemory
  },
  {
    name: "SQLite",
    stores: () =>
      Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer()).pipe(
        Layer.provideMerge(Wakeup.layer),
        Layer.provideMerge(sqliteMemory),
        Layer.orDie
      ),
    sagaStore: SqlSagaStore.make(),
    tableOptions: {}
  },
  {
    name: "PostgreSQL",
    stores: () =>
      Layer.mergeAll(SqlEventStore.layer({ schema }), SqlCheckpointStore.layer({ schema })).pipe(
        Layer.provideMerge(Wakeup.layer),
        Layer.provideMerge(pgWithSchema(schema)),
        Layer.orDie
      ),
    sagaStore: SqlSagaStore.make({ schema }),
    tableOptions: { schema }
  },
  {
    name: "MariaDB",
    stores: () =>
      Layer.mergeAll(
        SqlEventStore.layer({ tablePrefix: `${schema}_` }),
        SqlCheckpointStore.layer({ tablePrefix: `${schema}_` })
      ).pipe(Layer.provideMerge(Wakeup.layer), Layer.provideMerge(mysqlWithPrefix(`${schema}_`)), Layer.orDie),
    sagaStore: SqlSagaStore.make({ tablePrefix: `${schema}_` }),
    tableOptions: { tablePrefix: `${schema}_` }
  }
]

/** The backend's stores, the account commands on a bus, and its saga store (possibly wrapped). */
const world = (
  backend: Backend,
  category: string,
  wrapStore: (s: SagaStore.SagaStore["Type"]) => SagaStore.SagaStore["Type"] = (s) => s,
  probe: (n: number) => Effect.Effect<string, unknown> = () => Effect.succeed("")
) => {
  const sagaStore = Layer.effect(SagaStore.SagaStore, Effect.map(Effect.orDie(backend.sagaStore), wrapStore))
  const bus = CommandBus.layer({ groups: [Accounts, Probes], retry: Schedule.recurs(0) }).pipe(
    Layer.provide(Layer.merge(accountHandlers(category), probeHandlers(probe)))
  )
  return Layer.mergeAll(bus, sagaStore).pipe(Layer.provideMerge(backend.stores()))
}

/** Accounts A (holding 100) and B (empty). */
const openAccounts = Effect.suspend(() =>
  Effect.all([
    dispatch(new OpenAccount({ accountId: "A", owner: "Ada" })),
    dispatch(new OpenAccount({ accountId: "B", owner: "Bob" })),
    dispatch(new Deposit({ accountId: "A", amount: 100 }))
  ])
)

const dispatch = <C extends CommandBus.Command>(command: C) =>
  Effect.flatMap(CommandBus.CommandBus, (bus) => bus.dispatch(command))

const balanceOf = (category: string, accountId: string) =>
  Effect.flatMap(EventStore.EventStore, (s) =>
    Stream.runCollect(s.readStream(`Account-${category}${accountId}`)).pipe(
      Effect.map((events) => {
        const last = Chunk.last(events)
        return Option.isSome(last) ? ((last.value.data as { balance?: number }).balance ?? 0) : 0
      })
    )
  )

const request = (category: string, transferId: string, from: string, to: string, amount: number) =>
  Effect.flatMap(EventStore.EventStore, (s) =>
    Effect.flatMap(Event.make({ type: "TransferRequested", data: { transferId, from, to, amount } }), (e) =>
      s.append(`${category}Transfer-${transferId}`, [e])
    )
  )

const confirm = (category: string, transferId: string) =>
  Effect.flatMap(EventStore.EventStore, (s) =>
    Effect.flatMap(Event.make({ type: "TransferConfirmed", data: { transferId } }), (e) =>
      s.append(`${category}Transfer-${transferId}`, [e])
    )
  )

const statusOf = <A, S, C>(saga: Saga.Saga<A, S, C>, id: string) =>
  Effect.map(
    Saga.instance(saga, id),
    Option.map((i) => i.status)
  )

const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.repeat({ until: done, schedule: Schedule.spaced("10 millis") }),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("not reached in 10 s") })
  )

const runOptions = { pollInterval: "20 millis", timeoutPoll: "20 millis" } as const

/** Opens the accounts, requests a transfer of 30 from A to B, and stops the runner once its deadline is pending. */
const stoppedWithDeadlinePending = (saga: ReturnType<typeof transferSaga>, category: string, transferId: string) =>
  Effect.gen(function* () {
    yield* openAccounts
    const runner = yield* Effect.fork(Saga.run(saga, runOptions))
    yield* request(category, transferId, "A", "B", 30)
    yield* waitFor(Saga.instance(saga, transferId), (i) => Option.isSome(i) && i.value.pendingTimeouts.length === 1)
    yield* Fiber.interrupt(runner)
  })

const sagaSuite = (backend: Backend) =>
  describe(`Saga on ${backend.name}`, () => {
    it.live("happy path: both steps run, the confirmation completes the instance and cancels its deadline", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = transferSaga(category, "1 hour")
        yield* Effect.gen(function* () {
          yield* openAccounts
          const runner = yield* Effect.fork(Saga.run(saga, runOptions))
          yield* request(category, "t1", "A", "B", 30)
          yield* waitFor(balanceOf(category, "B"), (b) => b === 30)
          yield* confirm(category, "t1")
          yield* waitFor(statusOf(saga, "t1"), (s) => Option.getOrNull(s) === "completed")
          const instance = Option.getOrThrow(yield* Saga.instance(saga, "t1"))
          assert.deepStrictEqual(instance.state, { step: "done" })
          assert.deepStrictEqual(instance.pendingTimeouts, [])
          assert.deepStrictEqual([yield* balanceOf(category, "A"), yield* balanceOf(category, "B")], [70, 30])
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category)))
      })
    )

    it.live("compensation: a failing step undoes the steps before it, newest first", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = transferSaga(category)
        yield* Effect.gen(function* () {
          yield* dispatch(new OpenAccount({ accountId: "A", owner: "Ada" }))
          yield* dispatch(new Deposit({ accountId: "A", amount: 100 }))
          // B was never opened: the deposit fails with AccountNotOpen
          const runner = yield* Effect.fork(Saga.run(saga, runOptions))
          yield* request(category, "t2", "A", "B", 30)
          yield* waitFor(statusOf(saga, "t2"), (s) => Option.getOrNull(s) === "compensated")
          const instance = Option.getOrThrow(yield* Saga.instance(saga, "t2"))
          assert.include(
            Option.getOrElse(instance.error, () => ""),
            "Deposit failed: AccountNotOpen"
          )
          assert.strictEqual(yield* balanceOf(category, "A"), 100)
          assert.deepStrictEqual(instance.pendingTimeouts, [])
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category)))
      })
    )

    // SQLite is left out: there the saga's commands join its transaction, and roll back with it
    if (backend.name !== "SQLite") {
      it.live("an input compensated in a batch that did not commit fails the same way again, not decided again", () =>
        Effect.gen(function* () {
          const category = (yield* uniqueCategory).replace(/^T/, "S")
          const saga = transferSaga(category, "1 hour")
          const failing = yield* Deferred.make<void>()
          const retry = yield* Deferred.make<void>()
          const saves = yield* Ref.make(0)
          // the first save (after the deposit to B failed and A was refunded) waits, then fails: its batch does
          // not commit, and meanwhile B is opened, so the deposit would now succeed
          const failFirst = (store: SagaStore.SagaStore["Type"]): SagaStore.SagaStore["Type"] => ({
            ...store,
            save: (...args) =>
              Effect.flatMap(
                Ref.getAndUpdate(saves, (n) => n + 1),
                (n) =>
                  n === 0
                    ? Deferred.succeed(failing, undefined).pipe(
                        Effect.zipRight(Deferred.await(retry)),
                        Effect.zipRight(
                          Effect.fail(new SagaStore.SagaStoreError({ operation: "save", cause: "crash" }))
                        )
                      )
                    : store.save(...args)
              )
          })
          yield* Effect.gen(function* () {
            yield* dispatch(new OpenAccount({ accountId: "A", owner: "Ada" }))
            yield* dispatch(new Deposit({ accountId: "A", amount: 100 }))
            const runner = yield* Effect.fork(Saga.run(saga, runOptions))
            yield* request(category, "t9", "A", "B", 30)
            yield* Deferred.await(failing)
            assert.strictEqual(yield* balanceOf(category, "A"), 100, "A was refunded before the batch failed")
            yield* dispatch(new OpenAccount({ accountId: "B", owner: "Bob" }))
            yield* Deferred.succeed(retry, undefined)
            yield* waitFor(statusOf(saga, "t9"), (s) => Option.getOrNull(s) === "compensated")
            const instance = Option.getOrThrow(yield* Saga.instance(saga, "t9"))
            assert.include(
              Option.getOrElse(instance.error, () => ""),
              "Deposit failed: AccountNotOpen"
            )
            // refunded once, never credited: no money made
            assert.strictEqual(yield* balanceOf(category, "A"), 100)
            assert.strictEqual(yield* balanceOf(category, "B"), 0)
            yield* Fiber.interrupt(runner)
          }).pipe(Effect.provide(world(backend, category, failFirst)))
        })
      )
    }

    it.live("a step whose compensation cannot be stored is not sent: the input is poison, with nothing sent", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = Saga.make({
          name: `unlisted-${category}`,
          events: TransferEvent,
          categories: [`${category}Transfer`],
          correlate: (event) => event.transferId,
          state: Schema.Struct({}),
          initialState: {},
          // Deposit is not listed: a compensation of that class cannot be stored
          commands: [Withdraw],
          onPoison: "skip",
          react: (state, input) =>
            input._tag !== "TransferRequested"
              ? { state }
              : {
                  state,
                  complete: true,
                  commands: [
                    input.transferId === "bad"
                      ? {
                          command: new Withdraw({ accountId: input.from, amount: input.amount }),
                          compensation: new Deposit({ accountId: input.from, amount: input.amount }) as never
                        }
                      : new Withdraw({ accountId: input.from, amount: input.amount })
                  ]
                }
        })
        yield* Effect.gen(function* () {
          yield* openAccounts
          const runner = yield* Effect.fork(Saga.run(saga, runOptions))
          yield* request(category, "bad", "A", "B", 30)
          yield* request(category, "good", "A", "B", 10)
          yield* waitFor(statusOf(saga, "good"), (s) => Option.getOrNull(s) === "completed")
          assert.isTrue(Option.isNone(yield* Saga.instance(saga, "bad")))
          // only the good transfer's withdrawal happened
          assert.strictEqual(yield* balanceOf(category, "A"), 90)
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category)))
      })
    )

    const tableOptions = backend.tableOptions
    if (tableOptions !== undefined) {
      it.live("an instance stored corrupt (not JSON) makes its inputs poison; the saga goes on with the others", () =>
        Effect.gen(function* () {
          const category = (yield* uniqueCategory).replace(/^T/, "S")
          const saga = transferSaga(category, "1 hour")
          yield* Effect.gen(function* () {
            yield* openAccounts
            const runner = yield* Effect.fork(
              Saga.run({ ...saga, projection: { ...saga.projection, onPoison: "skip" } }, runOptions)
            )
            yield* request(category, "t1", "A", "B", 10)
            yield* waitFor(statusOf(saga, "t1"), (s) => Option.isSome(s))
            const sql = yield* SqlClient.SqlClient
            const t = yield* tables(tableOptions)
            yield* sql`update ${sql(t.sagaInstances)} set state = ${"{not json"} where saga = ${saga.name} and instance = ${"t1"}`
            yield* confirm(category, "t1")
            // the confirmation of t1 is poison (skipped); t2 after it goes through
            yield* request(category, "t2", "A", "B", 5)
            yield* waitFor(statusOf(saga, "t2"), (s) => Option.isSome(s))
            yield* Fiber.interrupt(runner)
          }).pipe(Effect.provide(world(backend, category)))
        })
      )
    }

    it.live("a compensation that fails ends the instance failed, keeping the compensations not run", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = transferSaga(category, "200 millis")
        yield* Effect.gen(function* () {
          yield* openAccounts
          const runner = yield* Effect.fork(Saga.run(saga, runOptions))
          yield* request(category, "t6", "A", "B", 30)
          yield* waitFor(balanceOf(category, "B"), (b) => b === 30)
          // B spends the money before the deadline: taking it back (the newest compensation) fails
          yield* dispatch(new Withdraw({ accountId: "B", amount: 30 }))
          yield* waitFor(statusOf(saga, "t6"), (s) => Option.getOrNull(s) === "failed")
          const instance = Option.getOrThrow(yield* Saga.instance(saga, "t6"))
          assert.include(
            Option.getOrElse(instance.error, () => ""),
            "compensation Withdraw failed: InsufficientFunds"
          )
          // the refund of A was not run, and stays on record
          assert.strictEqual(instance.compensations, 2)
          assert.strictEqual(yield* balanceOf(category, "A"), 70)
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category)))
      })
    )

    it.live("timeout: without confirmation the deadline fires and both steps are compensated", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = transferSaga(category)
        yield* Effect.gen(function* () {
          yield* openAccounts
          const runner = yield* Effect.fork(Saga.run(saga, runOptions))
          yield* request(category, "t3", "A", "B", 30)
          yield* waitFor(statusOf(saga, "t3"), (s) => Option.getOrNull(s) === "compensated")
          const instance = Option.getOrThrow(yield* Saga.instance(saga, "t3"))
          assert.include(
            Option.getOrElse(instance.error, () => ""),
            "deadline passed"
          )
          assert.deepStrictEqual([yield* balanceOf(category, "A"), yield* balanceOf(category, "B")], [100, 0])
          // a late confirmation changes nothing
          yield* confirm(category, "t3")
          yield* Effect.sleep("100 millis")
          assert.deepStrictEqual(yield* statusOf(saga, "t3"), Option.some("compensated"))
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category)))
      })
    )

    it.live("a crash after sending commands, before saving the state, does not execute them twice", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = transferSaga(category, "1 hour")
        const failSaves = yield* Ref.make(2)
        // the first saves fail as a crash would: the commands went out, the state was not saved
        const crashing = (store: SagaStore.SagaStore["Type"]): SagaStore.SagaStore["Type"] => ({
          ...store,
          save: (...args) =>
            Effect.flatMap(
              Ref.getAndUpdate(failSaves, (n) => n - 1),
              (left) =>
                left > 0
                  ? Effect.fail(new SagaStore.SagaStoreError({ operation: "save", cause: "crash" }))
                  : store.save(...args)
            )
        })
        yield* Effect.gen(function* () {
          yield* openAccounts
          const runner = yield* Effect.fork(Saga.run(saga, runOptions))
          yield* request(category, "t4", "A", "B", 30)
          yield* waitFor(statusOf(saga, "t4"), (s) => Option.getOrNull(s) === "running")
          assert.strictEqual(yield* Ref.get(failSaves), -1, "the reaction ran three times")
          assert.deepStrictEqual([yield* balanceOf(category, "A"), yield* balanceOf(category, "B")], [70, 30])
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category, crashing)))
      })
    )

    it.live("concurrent events of one instance (in different partitions) are each applied once", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const Pinged = Schema.TaggedStruct("Pinged", { n: Schema.Number })
        const counter = Saga.make({
          name: `counter-${category}`,
          events: Pinged,
          categories: [category],
          correlate: () => "one",
          state: Schema.Struct({ seen: Schema.Array(Schema.Number) }),
          initialState: { seen: [] as ReadonlyArray<number> },
          commands: [],
          partitions: 4,
          batchSize: 2,
          react: (state, input) => ({ state: input._tag === "Pinged" ? { seen: [...state.seen, input.n] } : state })
        })
        yield* Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          for (let n = 0; n < 40; n++) {
            yield* store.append(`${category}-${n % 8}`, [yield* Event.make({ type: "Pinged", data: { n } })])
          }
          const runner = yield* Effect.fork(Saga.run(counter, runOptions))
          yield* waitFor(Saga.instance(counter, "one"), (i) => Option.isSome(i) && i.value.state.seen.length >= 40)
          yield* Effect.sleep("100 millis")
          const seen = Option.getOrThrow(yield* Saga.instance(counter, "one")).state.seen
          assert.deepStrictEqual(
            [...seen].sort((a, b) => a - b),
            Array.from({ length: 40 }, (_, n) => n)
          )
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category)))
      })
    )

    it.live("a deadline racing the confirmation: every transfer either completes or is undone, never both", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = transferSaga(category, "15 millis")
        yield* Effect.gen(function* () {
          yield* openAccounts
          const runner = yield* Effect.fork(Saga.run(saga, { pollInterval: "5 millis", timeoutPoll: "5 millis" }))
          const ids = Array.from({ length: 20 }, (_, i) => `r${i}`)
          for (const [i, id] of ids.entries()) {
            yield* request(category, id, "A", "B", 1)
            yield* Effect.sleep(`${i * 2} millis`)
            yield* confirm(category, id)
          }
          const statuses = yield* Effect.forEach(ids, (id) =>
            Effect.zipRight(
              waitFor(statusOf(saga, id), (s) => Option.isSome(s) && s.value !== "running"),
              Effect.map(statusOf(saga, id), Option.getOrThrow)
            )
          )
          const completed = statuses.filter((s) => s === "completed").length
          assert.strictEqual(completed + statuses.filter((s) => s === "compensated").length, ids.length)
          assert.deepStrictEqual(
            [yield* balanceOf(category, "A"), yield* balanceOf(category, "B")],
            [100 - completed, completed]
          )
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category)))
      })
    )

    it.live("a batch that fails part-way is applied again from its start, each event once", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const Pinged = Schema.TaggedStruct("Pinged", { n: Schema.Number })
        const counter = Saga.make({
          name: `batch-${category}`,
          events: Pinged,
          categories: [category],
          correlate: () => "one",
          state: Schema.Struct({ seen: Schema.Array(Schema.Number) }),
          initialState: { seen: [] as ReadonlyArray<number> },
          commands: [],
          batchSize: 10,
          react: (state, input) => ({ state: input._tag === "Pinged" ? { seen: [...state.seen, input.n] } : state })
        })
        const saves = yield* Ref.make(0)
        // the second save fails once: the first event of the batch was saved already
        const failSecond = (store: SagaStore.SagaStore["Type"]): SagaStore.SagaStore["Type"] => ({
          ...store,
          save: (...args) =>
            Effect.flatMap(
              Ref.updateAndGet(saves, (n) => n + 1),
              (n) =>
                n === 2
                  ? Effect.fail(new SagaStore.SagaStoreError({ operation: "save", cause: "crash" }))
                  : store.save(...args)
            )
        })
        yield* Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          for (let n = 0; n < 3; n++) {
            yield* store.append(`${category}-1`, [yield* Event.make({ type: "Pinged", data: { n } })])
          }
          const runner = yield* Effect.fork(Saga.run(counter, runOptions))
          yield* waitFor(Saga.instance(counter, "one"), (i) => Option.isSome(i) && i.value.state.seen.length >= 3)
          yield* Effect.sleep("50 millis")
          assert.deepStrictEqual(Option.getOrThrow(yield* Saga.instance(counter, "one")).state.seen, [0, 1, 2])
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category, failSecond)))
      })
    )

    it.live("two runners share the due timeouts: each fires once", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = transferSaga(category, "30 millis")
        yield* Effect.gen(function* () {
          yield* openAccounts
          const runners = yield* Effect.forEach(["one", "two"], (workerId) =>
            Effect.fork(Saga.run(saga, { ...runOptions, workerId, timeoutPoll: "5 millis" }))
          )
          const ids = Array.from({ length: 8 }, (_, i) => `d${i}`)
          for (const id of ids) yield* request(category, id, "A", "B", 1)
          for (const id of ids) yield* waitFor(statusOf(saga, id), (s) => Option.getOrNull(s) === "compensated")
          // a deadline fired twice would refund twice (A above 100) or fail taking B's money back
          assert.deepStrictEqual([yield* balanceOf(category, "A"), yield* balanceOf(category, "B")], [100, 0])
          yield* Effect.forEach(runners, Fiber.interrupt)
        }).pipe(Effect.provide(world(backend, category)))
      })
    )

    it.live("a command whose outcome is unknown is sent again later, not compensated", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const failures = yield* Ref.make(2)
        const executed = yield* Ref.make(0)
        // the bus does not retry (recurs(0)): two failures reach the saga as CommandUnavailable
        const probe = () =>
          Effect.flatMap(
            Ref.getAndUpdate(failures, (n) => n - 1),
            (left) =>
              left > 0
                ? Effect.fail(new EventStore.EventStoreError({ operation: "append", cause: "down" }))
                : Effect.as(
                    Ref.update(executed, (n) => n + 1),
                    "ok"
                  )
          )
        const Pinged = Schema.TaggedStruct("Pinged", { n: Schema.Number })
        const pinger = Saga.make({
          name: `unknown-${category}`,
          events: Pinged,
          categories: [category],
          correlate: () => "one",
          state: Schema.Struct({ pinged: Schema.Boolean }),
          initialState: { pinged: false },
          commands: [Probe],
          react: (_state, input) =>
            input._tag === "Pinged"
              ? { state: { pinged: true }, commands: [new Probe({ n: input.n })], complete: true }
              : { state: { pinged: false } }
        })
        yield* Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* store.append(`${category}-1`, [yield* Event.make({ type: "Pinged", data: { n: 1 } })])
          const runner = yield* Effect.fork(Saga.run(pinger, runOptions))
          yield* waitFor(statusOf(pinger, "one"), (s) => Option.getOrNull(s) === "completed")
          assert.strictEqual(yield* Ref.get(executed), 1)
          assert.strictEqual(yield* Ref.get(failures), -1, "the command was sent three times")
          yield* Fiber.interrupt(runner)
        }).pipe(Effect.provide(world(backend, category, (s) => s, probe)))
      })
    )

    it.live("pending timeouts survive a restart of the runner", () =>
      Effect.gen(function* () {
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = transferSaga(category, "400 millis")
        yield* Effect.gen(function* () {
          yield* stoppedWithDeadlinePending(saga, category, "t5")
          yield* Effect.sleep("500 millis")
          assert.deepStrictEqual(yield* statusOf(saga, "t5"), Option.some("running"), "nobody fired it while stopped")
          const second = yield* Effect.fork(Saga.run(saga, runOptions))
          yield* waitFor(statusOf(saga, "t5"), (s) => Option.getOrNull(s) === "compensated")
          yield* Fiber.interrupt(second)
        }).pipe(Effect.provide(world(backend, category)))
      })
    )
  })

for (const backend of backends) sagaSuite(backend)

describe("Saga on PostgreSQL restarted", () => {
  it.scopedLive(
    "a pending timeout survives a restart of the database: a runner on a fresh pool fires it once",
    () =>
      Effect.gen(function* () {
        const server = yield* throwawayPostgres
        const category = (yield* uniqueCategory).replace(/^T/, "S")
        const saga = transferSaga(category, "400 millis")
        const restarted: Backend = {
          name: "PostgreSQL (throwaway)",
          stores: () =>
            Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer()).pipe(
              Layer.provideMerge(Wakeup.layer),
              Layer.provideMerge(Postgres.layer({ url: server.url, maxConnections: 8 })),
              Layer.orDie
            ),
          sagaStore: SqlSagaStore.make()
        }
        // before: the transfer's deadline is pending when the runner stops and its pool closes
        yield* stoppedWithDeadlinePending(saga, category, "t1").pipe(Effect.provide(world(restarted, category)))
        // the database goes down past the deadline, and comes back
        yield* server.kill
        yield* Effect.sleep("500 millis")
        yield* server.start
        yield* Effect.gen(function* () {
          assert.deepStrictEqual(yield* statusOf(saga, "t1"), Option.some("running"), "nobody fired it meanwhile")
          const runner = yield* Effect.fork(Saga.run(saga, runOptions))
          yield* waitFor(statusOf(saga, "t1"), (s) => Option.getOrNull(s) === "compensated")
          yield* Fiber.interrupt(runner)
          const instance = Option.getOrThrow(yield* Saga.instance(saga, "t1"))
          assert.include(
            Option.getOrElse(instance.error, () => ""),
            "deadline passed"
          )
          assert.deepStrictEqual([yield* balanceOf(category, "A"), yield* balanceOf(category, "B")], [100, 0])
        }).pipe(Effect.provide(world(restarted, category)))
      }),
    60_000
  )
})
