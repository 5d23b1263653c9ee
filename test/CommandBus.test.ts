import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { AccountAlreadyOpen, InsufficientFunds } from "../examples/bank/Account.js"
import * as Event from "../src/Event.js"
import * as CommandBus from "../src/CommandBus.js"
import * as CommandMiddleware from "../src/CommandMiddleware.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import {
  accountHandlers,
  Accounts,
  type CloseAccount,
  Deposit,
  OpenAccount,
  Probe,
  probeHandlers,
  Probes,
  Withdraw
} from "./support/commands.js"
import { uniqueCategory } from "./support/ids.js"

const busWith = (
  probe: (n: number) => Effect.Effect<string, unknown>,
  options: Partial<CommandBus.Options<[typeof Accounts, typeof Probes], never>> = {}
) =>
  Effect.gen(function* () {
    const category = (yield* uniqueCategory).replace(/^T/, "A")
    const bus = CommandBus.layer({ groups: [Accounts, Probes], retry: Schedule.recurs(2), ...options }).pipe(
      Layer.provide(Layer.merge(accountHandlers(category), probeHandlers(probe))),
      Layer.provideMerge(MemoryEventStore.layer())
    )
    return { bus, category }
  })

const dispatch = <C extends CommandBus.Command>(command: C) =>
  Effect.flatMap(CommandBus.CommandBus, (bus) => bus.dispatch(command))

const eventsOf = (streamId: string) =>
  Effect.flatMap(EventStore.EventStore, (s) =>
    Stream.runCollect(s.readStream(streamId)).pipe(
      Effect.map(Chunk.toReadonlyArray),
      Effect.catchTag("StreamNotFound", () => Effect.succeed([]))
    )
  )

describe("CommandBus", () => {
  it.live("routes each command to its handler and returns its typed result", () =>
    Effect.gen(function* () {
      const { bus, category } = yield* busWith(() => Effect.succeed("probed"))
      yield* Effect.gen(function* () {
        assert.strictEqual((yield* dispatch(new OpenAccount({ accountId: "1", owner: "Ada" }))).version, 1)
        assert.strictEqual((yield* dispatch(new Deposit({ accountId: "1", amount: 10 }))).version, 2)
        assert.strictEqual(yield* dispatch(new Probe({ n: 1 })), "probed")
        assert.strictEqual((yield* eventsOf(`Account-${category}1`)).length, 2)
      }).pipe(Effect.provide(bus))
    })
  )

  it.live("domain errors come back typed and are never retried; undeclared errors fail at once", () =>
    Effect.gen(function* () {
      const calls = yield* Ref.make(0)
      const outcome = yield* Ref.make<"domain" | "undeclared">("domain")
      // the probe's handler counts its calls: a retry would call it again
      const { bus } = yield* busWith(() =>
        Effect.zipRight(
          Ref.update(calls, (n) => n + 1),
          Effect.flatMap(Ref.get(outcome), (o) =>
            o === "domain"
              ? Effect.fail(new InsufficientFunds({ balance: 0, requested: 1 }))
              : Effect.fail({ _tag: "Weird" })
          )
        )
      )
      yield* Effect.gen(function* () {
        yield* dispatch(new OpenAccount({ accountId: "1", owner: "Ada" }))
        const error = yield* Effect.flip(dispatch(new Withdraw({ accountId: "1", amount: 5 })))
        assert.strictEqual(error._tag, "InsufficientFunds")
        const again = yield* Effect.flip(dispatch(new OpenAccount({ accountId: "1", owner: "Bob" })))
        assert.instanceOf(again, AccountAlreadyOpen)
        // Probe declares no failure: an InsufficientFunds from its handler is undeclared, not transient
        const undeclared = yield* Effect.flip(dispatch(new Probe({ n: 1 })))
        assert.strictEqual(undeclared._tag, "CommandFailed")
        assert.strictEqual(undeclared._tag === "CommandFailed" ? undeclared.errorTag : "", "InsufficientFunds")
        yield* Ref.set(outcome, "undeclared")
        const weird = yield* Effect.flip(dispatch(new Probe({ n: 2 })))
        assert.strictEqual(weird._tag === "CommandFailed" ? weird.errorTag : "", "Weird")
      }).pipe(Effect.provide(bus))
      assert.strictEqual(yield* Ref.get(calls), 2, "each failing handler ran once")
    })
  )

  it.live("other failures are retried by the schedule, with the same command id, then reported", () =>
    Effect.gen(function* () {
      const attempts = yield* Ref.make<ReadonlyArray<string | undefined>>([])
      const failures = yield* Ref.make(2)
      const probe = () =>
        Effect.gen(function* () {
          const context = yield* Event.CommandContext
          yield* Ref.update(attempts, (a) => [...a, context.commandId])
          const left = yield* Ref.getAndUpdate(failures, (n) => n - 1)
          return left > 0 ? yield* new EventStore.EventStoreError({ operation: "append", cause: "down" }) : "done"
        })
      const { bus } = yield* busWith(probe)
      yield* Effect.gen(function* () {
        assert.strictEqual(yield* dispatch(new Probe({ n: 1 })), "done")
        const ids = yield* Ref.get(attempts)
        assert.strictEqual(ids.length, 3)
        assert.isTrue(ids.every((id) => id !== undefined && id === ids[0]))
        yield* Ref.set(failures, 10)
        const error = yield* Effect.flip(dispatch(new Probe({ n: 2 })))
        assert.strictEqual(error._tag, "CommandUnavailable")
        assert.include(error.message, "EventStoreError")
      }).pipe(Effect.provide(bus))
    })
  )

  it.live("a refused append (InvalidAppend) is permanent: reported at once as CommandFailed, never retried", () =>
    Effect.gen(function* () {
      const calls = yield* Ref.make(0)
      const { bus } = yield* busWith(() =>
        Effect.zipRight(
          Ref.update(calls, (n) => n + 1),
          Effect.fail(
            new EventStore.InvalidAppend({
              streamId: "Probe-1",
              reason: "InvalidJson",
              detail: "data.x contains a NUL"
            })
          )
        )
      )
      const error = yield* Effect.flip(dispatch(new Probe({ n: 1 }))).pipe(Effect.provide(bus))
      assert.strictEqual(error._tag, "CommandFailed")
      assert.strictEqual(error._tag === "CommandFailed" ? error.errorTag : undefined, "InvalidAppend")
      assert.isFalse(
        CommandBus.isTransient(new EventStore.InvalidAppend({ streamId: "x", reason: "InvalidJson", detail: "" }))
      )
      assert.strictEqual(yield* Ref.get(calls), 1)
    })
  )

  it.live("hostile input is refused before any handler runs, and nothing is written", () =>
    Effect.gen(function* () {
      const { bus } = yield* busWith(() => Effect.succeed("x"))
      yield* Effect.gen(function* () {
        const refused = (command: unknown) =>
          Effect.map(
            Effect.flip(dispatch(command as CommandBus.Command)),
            (e) => e as { _tag: string; reason?: string }
          )
        // unchecked construction with invalid fields
        const wrongType = yield* refused(new Deposit({ accountId: "1", amount: "lots" as never }, true))
        assert.strictEqual(wrongType.reason, "InvalidCommand")
        const negative = yield* refused(new Deposit({ accountId: "1", amount: -5 }, true))
        assert.strictEqual(negative.reason, "InvalidCommand")
        const hostileId = yield* refused(new OpenAccount({ accountId: "1'; drop table x; --", owner: "x" }, true))
        assert.strictEqual(hostileId.reason, "InvalidCommand")
        // an extra field slipped onto an instance
        const extra = Object.assign(new OpenAccount({ accountId: "1", owner: "Ada" }), { admin: true })
        assert.strictEqual((yield* refused(extra)).reason, "InvalidCommand")
        // a huge string
        const huge = yield* refused(new OpenAccount({ accountId: "1", owner: "x".repeat(2_000_000) }, true))
        assert.strictEqual(huge._tag, "CommandValidationError")
        // a value nested 100,000 levels deep: describing it must not overflow the stack (a defect)
        let deep: unknown = []
        for (let i = 0; i < 100_000; i++) deep = [deep]
        const nested = yield* refused(new Deposit({ accountId: "1", amount: deep as never }, true))
        assert.strictEqual(nested.reason, "InvalidCommand")
        const nestedExtra = Object.assign(new OpenAccount({ accountId: "1", owner: "Ada" }), { extra: deep })
        assert.strictEqual((yield* refused(nestedExtra)).reason, "InvalidCommand")
        // not a command at all, or one nobody handles
        assert.strictEqual((yield* refused({ _tag: "DropEverything" })).reason, "UnknownCommand")
        assert.strictEqual((yield* refused(null)).reason, "UnknownCommand")
        // the test's own store: nothing at all was written, under any stream id
        const written = yield* Effect.flatMap(EventStore.EventStore, (s) => Stream.runCollect(s.readAll()))
        assert.strictEqual(written.length, 0)
      }).pipe(Effect.provide(bus))
    })
  )

  it.live("commands larger than the limit are refused as TooLarge", () =>
    Effect.gen(function* () {
      const { bus } = yield* busWith(() => Effect.succeed("x"), { maxCommandBytes: 100 })
      const error = yield* Effect.flip(dispatch(new OpenAccount({ accountId: "1", owner: "y".repeat(100) }))).pipe(
        Effect.provide(bus)
      )
      assert.strictEqual(error._tag === "CommandValidationError" ? error.reason : error._tag, "TooLarge")
    })
  )

  it.effect("a group with a missing or unknown handler, or a command handled twice, fails the Layer", () =>
    Effect.gen(function* () {
      const missing = yield* Effect.flip(
        Layer.build(
          Accounts.toLayer({ OpenAccount: () => Effect.succeed({ version: 1 }) } as unknown as CommandBus.Handlers<
            OpenAccount | Deposit | Withdraw | CloseAccount,
            never
          >)
        )
      ).pipe(Effect.scoped)
      assert.strictEqual(missing._tag, "CommandBusConfigError")
      assert.include(missing.message, "no handler for Deposit")
      const twice = yield* Effect.flip(
        Layer.build(
          CommandBus.layer({ groups: [Probes, CommandBus.group(Probe, Deposit)] }).pipe(
            Layer.provide(probeHandlers(() => Effect.succeed("a"))),
            Layer.provide(
              CommandBus.group(Probe, Deposit).toLayer({
                Probe: () => Effect.succeed("b"),
                Deposit: () => Effect.succeed({ version: 1, readAfter: { streamId: "Account-1", version: 1 } })
              })
            )
          )
        )
      ).pipe(Effect.scoped)
      assert.include(twice.message, "Probe is handled twice")
    })
  )
})

describe("CommandBus middleware", () => {
  it.live("run in order, outermost first, around the handler", () =>
    Effect.gen(function* () {
      const trail = yield* Ref.make<ReadonlyArray<string>>([])
      const step = (name: string) =>
        CommandMiddleware.make(name, (_c, _i, next) =>
          Effect.zipRight(
            Ref.update(trail, (t) => [...t, `${name}>`]),
            Effect.tap(next, () => Ref.update(trail, (t) => [...t, `<${name}`]))
          )
        )
      const { bus } = yield* busWith(
        () =>
          Effect.as(
            Ref.update(trail, (t) => [...t, "handler"]),
            "x"
          ),
        {
          middleware: [step("a"), step("b")]
        }
      )
      yield* dispatch(new Probe({ n: 1 })).pipe(Effect.provide(bus))
      assert.deepStrictEqual(yield* Ref.get(trail), ["a>", "b>", "handler", "<b", "<a"])
    })
  )

  it.live("logging writes one line per command with tag, id, outcome and duration", () =>
    Effect.gen(function* () {
      const lines = yield* Ref.make<ReadonlyArray<{ message: unknown; annotations: Record<string, unknown> }>>([])
      const capture = Logger.make(({ annotations, message }) => {
        Effect.runSync(Ref.update(lines, (l) => [...l, { message, annotations: Object.fromEntries(annotations) }]))
      })
      const { bus } = yield* busWith(() => Effect.succeed("x"), { middleware: [CommandMiddleware.logging] })
      yield* Effect.gen(function* () {
        yield* dispatch(new Probe({ n: 1 }))
        yield* Effect.flip(dispatch(new Deposit({ accountId: "9", amount: 1 })))
      }).pipe(Effect.provide(bus), Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      const logged = (yield* Ref.get(lines)).filter((l) => "command" in l.annotations)
      assert.deepStrictEqual(
        logged.map((l) => [l.annotations.command, l.annotations.outcome]),
        [
          ["Probe", "success"],
          ["Deposit", "AccountNotOpen"]
        ]
      )
      assert.isTrue(logged.every((l) => typeof l.annotations.commandId === "string"))
      assert.isTrue(logged.every((l) => typeof l.annotations.durationMs === "number"))
    })
  )

  it.live("tracing runs the handler inside a CommandBus.dispatch span carrying the command's tag and id", () =>
    Effect.gen(function* () {
      const { bus } = yield* busWith(
        () =>
          Effect.flatMap(Effect.currentSpan, (span) =>
            Effect.succeed(
              `${span.name} ${String(span.attributes.get("command.tag"))} ${span.attributes.has("command.id")}`
            )
          ),
        { middleware: [CommandMiddleware.tracing] }
      )
      assert.strictEqual(
        yield* dispatch(new Probe({ n: 1 })).pipe(Effect.provide(bus)),
        "CommandBus.dispatch Probe true"
      )
    })
  )

  it.live("events appended under the dispatch span carry its trace in their metadata", () =>
    Effect.gen(function* () {
      const traceId = yield* Ref.make("")
      const capture = CommandMiddleware.make("capture", (_c, _i, next) =>
        Effect.zipRight(
          Effect.flatMap(Effect.currentSpan, (span) => Ref.set(traceId, span.traceId)),
          next
        )
      )
      const { bus, category } = yield* busWith(() => Effect.succeed("x"), {
        middleware: [CommandMiddleware.tracing, capture]
      })
      const [event] = yield* Effect.zipRight(
        dispatch(new OpenAccount({ accountId: "1", owner: "Ada" })),
        eventsOf(`Account-${category}1`)
      ).pipe(Effect.provide(bus))
      const id = yield* Ref.get(traceId)
      assert.isAbove(id.length, 0)
      assert.include(String(event!.metadata.traceparent), id)
    })
  )

  it.live("authorization: the principal's roles from the command context against the command's rule", () =>
    Effect.gen(function* () {
      const { bus } = yield* busWith(() => Effect.succeed("x"), {
        middleware: [CommandMiddleware.authorization({ rules: { OpenAccount: ["teller", "admin"] } })]
      })
      yield* Effect.gen(function* () {
        const open = (accountId: string) => dispatch(new OpenAccount({ accountId, owner: "Ada" }))
        const denied = yield* Effect.flip(
          open("1").pipe(Event.withCommandContext({ principal: "eve", roles: ["guest"] }))
        )
        assert.strictEqual(denied._tag, "Unauthorized")
        assert.strictEqual(denied._tag === "Unauthorized" ? denied.principal : undefined, "eve")
        const anonymous = yield* Effect.flip(open("1"))
        assert.strictEqual(anonymous._tag, "Unauthorized")
        yield* open("1").pipe(Event.withCommandContext({ principal: "tom", roles: ["teller"] }))
        // commands without a rule are open unless defaultDeny
        assert.strictEqual(yield* dispatch(new Probe({ n: 1 })), "x")
      }).pipe(Effect.provide(bus))
      const { bus: strict } = yield* busWith(() => Effect.succeed("x"), {
        middleware: [CommandMiddleware.authorization({ rules: {}, defaultDeny: true })]
      })
      const error = yield* Effect.flip(dispatch(new Probe({ n: 1 }))).pipe(Effect.provide(strict))
      assert.strictEqual(error._tag, "Unauthorized")
    })
  )

  it.live("recoverDefects turns a handler's defect into CommandDefect, and the bus keeps working", () =>
    Effect.gen(function* () {
      const { bus } = yield* busWith((n) => (n === 0 ? Effect.die(new Error("boom")) : Effect.succeed("ok")), {
        middleware: [CommandMiddleware.recoverDefects]
      })
      yield* Effect.gen(function* () {
        const error = yield* Effect.flip(dispatch(new Probe({ n: 0 })))
        assert.strictEqual(error._tag, "CommandDefect")
        assert.include(error.message, "boom")
        assert.strictEqual(yield* dispatch(new Probe({ n: 1 })), "ok")
      }).pipe(Effect.provide(bus))
    })
  )

  it.live("timeout fails a slow command with CommandTimeout", () =>
    Effect.gen(function* () {
      const { bus } = yield* busWith((n) => Effect.as(Effect.sleep(n), "done"), {
        middleware: [CommandMiddleware.timeout("50 millis")]
      })
      yield* Effect.gen(function* () {
        const error = yield* Effect.flip(dispatch(new Probe({ n: 5_000 })))
        assert.strictEqual(error._tag, "CommandTimeout")
        assert.strictEqual(yield* dispatch(new Probe({ n: 0 })), "done")
      }).pipe(Effect.provide(bus))
    })
  )

  it.live("validation middleware refuses what a user-defined check rejects", () =>
    Effect.gen(function* () {
      const { bus } = yield* busWith(() => Effect.succeed("x"), {
        middleware: [
          CommandMiddleware.validation((c) => (c._tag === "Probe" && (c as Probe).n > 9 ? "n too big" : undefined))
        ]
      })
      const error = yield* Effect.flip(dispatch(new Probe({ n: 10 }))).pipe(Effect.provide(bus))
      assert.include(error.message, "n too big")
    })
  )
})

describe("CommandBus.send", () => {
  it.live("under load, waiting senders keep the queue bounded and every command completes", () =>
    Effect.gen(function* () {
      const started = yield* Ref.make(0)
      const running = yield* Ref.make(0)
      const maxRunning = yield* Ref.make(0)
      const probe = (n: number) =>
        Effect.gen(function* () {
          yield* Ref.update(started, (s) => s + 1)
          const now = yield* Ref.updateAndGet(running, (r) => r + 1)
          yield* Ref.update(maxRunning, (m) => Math.max(m, now))
          yield* Effect.sleep("1 millis")
          yield* Ref.update(running, (r) => r - 1)
          return String(n)
        })
      const capacity = 16
      const { bus } = yield* busWith(probe, { send: { capacity, workers: 4 } })
      const results = yield* Effect.gen(function* () {
        const commandBus = yield* CommandBus.CommandBus
        let maxPending = 0
        const waits: Array<Effect.Effect<string, unknown>> = []
        for (let n = 0; n < 1000; n++) {
          waits.push(yield* commandBus.send(new Probe({ n })))
          // queued but not started: never more than the queue holds plus the commands being taken
          maxPending = Math.max(maxPending, waits.length - (yield* Ref.get(started)))
        }
        const all = yield* Effect.all(waits)
        return { all, maxPending }
      }).pipe(Effect.provide(bus))
      assert.deepStrictEqual(
        results.all,
        Array.from({ length: 1000 }, (_, n) => String(n))
      )
      assert.isAtMost(results.maxPending, capacity + 4 + 1)
      assert.isAtMost(yield* Ref.get(maxRunning), 4)
    })
  )

  it.live("whenFull fail refuses at once with BusOverloaded", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const { bus } = yield* busWith(
        () => Effect.as(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)), "x"),
        {
          send: { capacity: 1, workers: 1, whenFull: "fail" }
        }
      )
      yield* Effect.gen(function* () {
        const commandBus = yield* CommandBus.CommandBus
        const first = yield* commandBus.send(new Probe({ n: 1 }))
        yield* Deferred.await(started) // the worker took the first
        const second = yield* commandBus.send(new Probe({ n: 2 }))
        const third = yield* Effect.flip(commandBus.send(new Probe({ n: 3 })))
        assert.strictEqual(third._tag, "BusOverloaded")
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual([yield* first, yield* second], ["x", "x"])
      }).pipe(Effect.provide(bus))
    })
  )

  it.live("at a cancelling shutdown, senders waiting for room end too: every command completes or is cancelled", () =>
    Effect.gen(function* () {
      const started = yield* Deferred.make<void>()
      const { bus } = yield* busWith(
        () => Effect.as(Effect.zipRight(Deferred.succeed(started, undefined), Effect.sleep("50 millis")), "x"),
        { send: { capacity: 1, workers: 1, onShutdown: "cancel" } }
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(bus, scope)
      const commandBus = Context.get(context, CommandBus.CommandBus)
      // one runs, one is queued, three wait for room
      const senders = yield* Effect.forEach([1, 2, 3, 4, 5], (n) =>
        Effect.fork(Effect.flatten(commandBus.send(new Probe({ n }))))
      )
      yield* Deferred.await(started)
      yield* Effect.sleep("10 millis")
      yield* Scope.close(scope, Exit.void)
      const exits = yield* Effect.forEach(senders, (fiber) =>
        Fiber.await(fiber).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("a sender hangs") })
        )
      )
      for (const exit of exits) {
        if (Exit.isFailure(exit)) {
          assert.strictEqual(
            exit.cause._tag === "Fail" ? (exit.cause.error as { _tag: string })._tag : exit.cause._tag,
            "CommandCancelled"
          )
        }
      }
    })
  )

  it.live("shutdown drains queued commands by default, or cancels them visibly", () =>
    Effect.gen(function* () {
      for (const onShutdown of ["drain", "cancel"] as const) {
        const { bus } = yield* busWith((n) => Effect.as(Effect.sleep("10 millis"), String(n)), {
          send: { capacity: 10, workers: 1, onShutdown }
        })
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(bus, scope)
        const commandBus = (yield* Effect.provide(CommandBus.CommandBus, context)) as CommandBus.CommandBus["Type"]
        const waits = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => commandBus.send(new Probe({ n })))
        yield* Scope.close(scope, Exit.void)
        const exits = yield* Effect.forEach(waits, Effect.exit)
        if (onShutdown === "drain") {
          assert.isTrue(exits.every(Exit.isSuccess), "drained")
        } else {
          const cancelled = exits.filter((e) => Exit.isFailure(e))
          assert.isAbove(cancelled.length, 0)
          for (const e of cancelled) {
            assert.strictEqual(
              Exit.isFailure(e) && e.cause._tag === "Fail" ? (e.cause.error as { _tag: string })._tag : "",
              "CommandCancelled"
            )
          }
        }
        const late = yield* Effect.flip(commandBus.send(new Probe({ n: 6 })))
        assert.strictEqual(late._tag, "BusOverloaded")
      }
    })
  )
})
