/**
 * Command handling against a store: no lost updates under contention, idempotent repeats of a command,
 * metadata flow, and domain errors that write nothing. Run against every store implementation.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Aggregate from "../../src/Aggregate.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Upcaster from "../../src/Upcaster.js"
import { Account, type AccountCommand } from "../../examples/bank/Account.js"
import { uniqueCategory } from "../support/ids.js"

const handle = Aggregate.handler(Account)

// users with unique e-mails
const Registered = Schema.TaggedStruct("Registered", { email: Schema.String })
const EmailChanged = Schema.TaggedStruct("EmailChanged", { email: Schema.String })
const User = Aggregate.make({
  category: "User",
  events: Schema.Union(Registered, EmailChanged),
  initialState: { email: undefined as string | undefined },
  evolve: (_, event) => ({ email: event.email }),
  decide: (command: { readonly email: string }, state) =>
    state.email === undefined ? [Registered.make(command)] : [EmailChanged.make(command)],
  unique: (event, before) => ({
    claim: [{ constraint: "user-email", value: event.email }],
    release:
      before.email === undefined || before.email === event.email
        ? []
        : [{ constraint: "user-email", value: before.email }]
  })
})
const register = Aggregate.handler(User)

const history = (id: string) =>
  Upcaster.readStream(Account.codec, `Account-${id}`).pipe(Stream.runCollect, Effect.map(Chunk.toArray))

/** Store options the suite varies. */
export interface StoreOptions {
  readonly commandTtl?: Duration.DurationInput
}

export const suite = <E>(
  name: string,
  storeLayer: (options: StoreOptions) => Layer.Layer<EventStore.EventStore, E>
): void => {
  describe(name, () => {
    // a store that forgets handled commands at once
    layer(storeLayer({ commandTtl: "1 millis" }), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("a command handled again after its TTL is handled as a new command", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          const store = yield* EventStore.EventStore
          yield* handle(id, { _tag: "OpenAccount", owner: "ada" })
          const commandId = `late-${id}`
          const first = yield* handle(id, { _tag: "Deposit", amount: 10 }, { metadata: { commandId } })
          yield* handle(id, { _tag: "Deposit", amount: 1 })
          const forgotten = yield* store
            .findCommand(commandId)
            .pipe(Effect.delay("5 millis"), Effect.repeat({ until: Option.isNone, times: 2000 }))
          assert.isTrue(Option.isNone(forgotten))
          const again = yield* handle(id, { _tag: "Deposit", amount: 10 }, { metadata: { commandId } })
          assert.isFalse(first.duplicate)
          assert.isFalse(again.duplicate)
          assert.strictEqual(again.version, 4)
          assert.notDeepEqual(again.positions, first.positions)
          assert.strictEqual((yield* history(id)).length, 4)
        })
      )
    })
    layer(storeLayer({}), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("of concurrent handlers of one command exactly one is told it was not a duplicate", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          yield* handle(id, { _tag: "OpenAccount", owner: "ada" })
          const results = yield* Effect.all(
            Array.from({ length: 16 }, () =>
              handle(id, { _tag: "Deposit", amount: 7 }, { metadata: { commandId: `c16-${id}` } })
            ),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(results.filter((r) => !r.duplicate).length, 1)
          for (const r of results) {
            assert.deepStrictEqual([r.version, r.positions], [results[0]!.version, results[0]!.positions])
          }
          assert.strictEqual((yield* history(id)).length, 2)
        })
      )

      it.effect("a command id handled for another aggregate is refused, naming both streams", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          const store = yield* EventStore.EventStore
          const metadata = { commandId: `shared-${id}` }
          yield* handle(`${id}a`, { _tag: "OpenAccount", owner: "ada" }, { metadata })
          const error = yield* Effect.flip(handle(`${id}b`, { _tag: "OpenAccount", owner: "bob" }, { metadata }))
          assert.instanceOf(error, Aggregate.CommandIdReused)
          assert.deepStrictEqual(
            [error.commandId, error.streamId, error.handledBy],
            [metadata.commandId, `Account-${id}b`, `Account-${id}a`]
          )
          assert.strictEqual(yield* store.streamVersion(`Account-${id}b`), 0)
        })
      )

      it.effect(
        "16 fibers of 4 processes on one account: every committed event reflects the state it was decided on",
        () =>
          Effect.gen(function* () {
            const id = yield* uniqueCategory
            yield* handle(id, { _tag: "OpenAccount", owner: "ada" })
            // a handler per process: each with its own lanes and cached states, racing the others
            const processes = [
              handle,
              Aggregate.handler(Account),
              Aggregate.handler(Account),
              Aggregate.handler(Account)
            ]
            const patient = Schedule.spaced("2 millis").pipe(
              Schedule.jittered,
              Schedule.intersect(Schedule.recurs(200))
            )
            let committed = 0
            let refused = 0
            yield* Effect.forEach(
              Array.from({ length: 16 }),
              (_, fiber) =>
                Effect.forEach(Array.from({ length: 6 }), () =>
                  Effect.gen(function* () {
                    const amount = yield* Random.nextIntBetween(1, 50)
                    const command: AccountCommand = (yield* Random.nextBoolean)
                      ? { _tag: "Deposit", amount }
                      : { _tag: "Withdraw", amount }
                    yield* processes[fiber % 4]!(id, command, { retry: patient }).pipe(
                      Effect.tap(() => Effect.sync(() => committed++)),
                      Effect.catchTag("InsufficientFunds", () => Effect.sync(() => refused++))
                    )
                  })
                ),
              { concurrency: "unbounded" }
            )
            assert.strictEqual(committed + refused, 96)
            const events = yield* history(id)
            assert.strictEqual(events.length, 1 + committed)
            let balance = 0
            for (const { envelope, event } of events) {
              if (event._tag === "MoneyDeposited") balance += event.amount
              if (event._tag === "MoneyWithdrawn") balance -= event.amount
              if ("balance" in event)
                assert.strictEqual(event.balance, balance, `stale decision at version ${envelope.version}`)
            }
            assert.isAtLeast(balance, 0)
          }),
        60_000
      )

      it.effect("16 concurrent commands to one aggregate in one process queue in its lane: no conflict", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          yield* handle(id, { _tag: "OpenAccount", owner: "ada" })
          // no retry: a command that lost a race to another would fail
          const results = yield* Effect.forEach(
            Array.from({ length: 16 }),
            () => handle(id, { _tag: "Deposit", amount: 1 }, { retry: Schedule.stop }),
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual(
            results.map((r) => r.version).sort((a, b) => a - b),
            range(2, 17)
          )
        })
      )

      it.effect("a cached state is read on from its version; another writer's events are folded in", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          const inner = yield* EventStore.EventStore
          const reads: Array<number | undefined> = []
          const recording = EventStore.EventStore.of({
            ...inner,
            readStream: (streamId, options) => {
              reads.push(options?.fromVersion)
              return inner.readStream(streamId, options)
            },
            readStreamPage: (streamId, options) => {
              reads.push(options?.fromVersion)
              return inner.readStreamPage(streamId, options)
            }
          })
          const cached = Aggregate.handler(Account)
          const run = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore>) =>
            Effect.provideService(effect, EventStore.EventStore, recording)
          yield* run(cached(id, { _tag: "OpenAccount", owner: "ada" }))
          yield* run(cached(id, { _tag: "Deposit", amount: 5 }))
          // another process deposits twice
          const other = Aggregate.handler(Account)
          yield* other(id, { _tag: "Deposit", amount: 7 })
          yield* other(id, { _tag: "Deposit", amount: 9 })
          reads.length = 0
          const result = yield* run(cached(id, { _tag: "Withdraw", amount: 21 }))
          // read from the cached version 2 (its event checked, not folded again), not from 1
          assert.deepStrictEqual(reads, [2])
          assert.deepStrictEqual(result.events, [{ _tag: "MoneyWithdrawn", amount: 21, balance: 0 }])
        })
      )

      it.effect("a repeated command id returns the first result and appends nothing", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          yield* handle(id, { _tag: "OpenAccount", owner: "ada" })
          const metadata = { commandId: `cmd-${id}` }
          const first = yield* handle(id, { _tag: "Deposit", amount: 10 }, { metadata })
          yield* handle(id, { _tag: "Deposit", amount: 1 })
          const again = yield* handle(id, { _tag: "Deposit", amount: 10 }, { metadata })
          assert.isFalse(first.duplicate)
          assert.isTrue(again.duplicate)
          assert.deepStrictEqual(
            [again.version, again.positions, again.events],
            [first.version, first.positions, first.events]
          )
          const concurrent = yield* Effect.all(
            Array.from({ length: 4 }, () =>
              handle(id, { _tag: "Deposit", amount: 7 }, { metadata: { commandId: `c2-${id}` } })
            ),
            { concurrency: "unbounded" }
          )
          for (const r of concurrent) assert.deepStrictEqual(r.positions, concurrent[0]!.positions)
          assert.strictEqual((yield* history(id)).length, 4)
        })
      )

      it.effect("command context, command id and trace context flow into every event", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          yield* handle(id, { _tag: "OpenAccount", owner: "ada" }, { metadata: { commandId: "open-1" } }).pipe(
            Event.withCommandContext({ correlationId: "flow-7", principal: "alice", tenantId: "t1", custom: 1 }),
            Effect.withSpan("test")
          )
          const [{ envelope }] = yield* history(id)
          const metadata = envelope!.metadata
          assert.deepInclude(metadata, {
            commandId: "open-1",
            causationId: "open-1",
            correlationId: "flow-7",
            principal: "alice",
            tenantId: "t1",
            custom: 1
          })
          assert.match(metadata.traceparent!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
        })
      )

      it.effect("unique e-mails: concurrent registrations, one winner; a changed e-mail frees the old one", () =>
        Effect.gen(function* () {
          const tag = yield* uniqueCategory
          const email = `${tag}@example.com`
          const exits = yield* Effect.forEach(
            Array.from({ length: 6 }, (_, i) => `${tag}u${i}`),
            (id) => Effect.exit(register(id, { email })),
            { concurrency: "unbounded" }
          )
          const winners = exits.flatMap((exit, i) => (exit._tag === "Success" ? [i] : []))
          assert.strictEqual(winners.length, 1)
          for (const exit of exits) {
            if (exit._tag === "Failure")
              assert.strictEqual((yield* Effect.flip(exit))._tag, "UniqueConstraintViolation")
          }
          const winner = `${tag}u${winners[0]}`
          yield* register(winner, { email: `new-${email}` })
          // the old address is free again, the new one is taken
          yield* register(`${tag}late`, { email })
          const taken = yield* Effect.flip(register(`${tag}other`, { email: `new-${email}` }))
          assert.strictEqual(taken._tag, "UniqueConstraintViolation")
        })
      )

      it.effect("a domain error appends nothing; so does a command producing no events", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          yield* handle(id, { _tag: "OpenAccount", owner: "ada" })
          const error = yield* Effect.flip(handle(id, { _tag: "Withdraw", amount: 5 }))
          assert.strictEqual(error._tag, "InsufficientFunds")
          assert.strictEqual((yield* history(id)).length, 1)
          const invalid = yield* Effect.flip(handle("bad\nid", { _tag: "Deposit", amount: 1 }))
          assert.strictEqual(invalid._tag, "InvalidStreamId")
        })
      )
    })
  })
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
