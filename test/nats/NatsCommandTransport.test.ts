/**
 * The command bus over NATS request-reply, against the local NATS server (and a throwaway one for the
 * outage): two serving instances in one queue group, typed domain errors across the wire, hostile raw
 * requests, timeouts, nobody serving, and NATS down.
 */
import { randomBytes } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as CommandBus from "../../src/CommandBus.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import * as Nats from "../../src/nats/Nats.js"
import * as NatsCommandTransport from "../../src/nats/NatsCommandTransport.js"
import {
  accountHandlers,
  Accounts,
  Deposit,
  OpenAccount,
  Probe,
  probeHandlers,
  Probes,
  Withdraw
} from "../support/commands.js"
import { natsUrl } from "../support/config.js"
import { subscribeDenied, throwawayNats, throwawayNatsWith } from "../support/servers.js"

const prefix = () => `commands_${randomBytes(4).toString("hex")}`

/** One serving process: its own NATS connection, store and bus; the probe reports `name`. */
const server = (options: {
  readonly url: string
  readonly subjectPrefix: string
  readonly name: string
  readonly served?: Ref.Ref<ReadonlyArray<string>>
  readonly probe?: (n: number) => Effect.Effect<string, unknown>
}) =>
  NatsCommandTransport.serve({ subjectPrefix: options.subjectPrefix, maxCommandBytes: 100_000 }).pipe(
    Layer.provide(
      CommandBus.layer({ groups: [Accounts, Probes], retry: Schedule.recurs(0) }).pipe(
        Layer.provide(
          Layer.merge(
            accountHandlers("N"),
            probeHandlers((n) =>
              Effect.zipRight(
                options.served === undefined ? Effect.void : Ref.update(options.served, (s) => [...s, options.name]),
                options.probe?.(n) ?? Effect.succeed(`${options.name}:${n}`)
              )
            )
          )
        ),
        Layer.provide(MemoryEventStore.layer())
      )
    ),
    Layer.provide(Nats.layer({ servers: options.url, name: options.name }))
  )

const client = (url: string, subjectPrefix: string, timeout: Duration.DurationInput = "5 seconds") =>
  NatsCommandTransport.layerClient({ groups: [Accounts, Probes], subjectPrefix, timeout }).pipe(
    Layer.provideMerge(Nats.layer({ servers: url, name: "client" }))
  )

const dispatch = <C extends CommandBus.Command>(command: C) =>
  Effect.flatMap(CommandBus.CommandBus, (bus) => bus.dispatch(command))

describe("NatsCommandTransport", () => {
  it.scopedLive("two instances share a queue group; results and domain errors come back typed", () =>
    Effect.gen(function* () {
      const subjectPrefix = prefix()
      const served = yield* Ref.make<ReadonlyArray<string>>([])
      // each instance has its own memory store here, so account commands go to a single instance (below)
      yield* Layer.build(server({ url: natsUrl, subjectPrefix, name: "a", served }))
      yield* Layer.build(server({ url: natsUrl, subjectPrefix, name: "b", served }))
      const results = yield* Effect.forEach(
        Array.from({ length: 40 }, (_, n) => n),
        (n) => dispatch(new Probe({ n }))
      ).pipe(Effect.provide(client(natsUrl, subjectPrefix)))
      assert.deepStrictEqual(
        results.map((r) => r.split(":")[1]),
        Array.from({ length: 40 }, (_, n) => String(n))
      )
      const instances = new Set(yield* Ref.get(served))
      assert.deepStrictEqual([...instances].sort(), ["a", "b"], "both instances served requests")

      const single = prefix()
      yield* Layer.build(server({ url: natsUrl, subjectPrefix: single, name: "c" }))
      yield* Effect.gen(function* () {
        assert.strictEqual((yield* dispatch(new OpenAccount({ accountId: "1", owner: "Ada" }))).version, 1)
        const refused = yield* Effect.flip(dispatch(new Withdraw({ accountId: "1", amount: 5 })))
        assert.strictEqual(refused._tag, "InsufficientFunds")
        assert.deepStrictEqual(refused._tag === "InsufficientFunds" ? [refused.balance, refused.requested] : [], [0, 5])
        const notOpen = yield* Effect.flip(dispatch(new Deposit({ accountId: "2", amount: 5 })))
        assert.strictEqual(notOpen._tag, "AccountNotOpen")
      }).pipe(Effect.provide(client(natsUrl, single)))
    })
  )

  it.scopedLive("hostile raw requests get a typed validation error back, and reach no handler", () =>
    Effect.gen(function* () {
      const subjectPrefix = prefix()
      const served = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Layer.build(server({ url: natsUrl, subjectPrefix, name: "a", served }))
      const { connection } = Context.get(yield* Layer.build(Nats.layer({ servers: natsUrl })), Nats.Nats)
      const Reply = Schema.parseJson(
        Schema.Exit({ success: Schema.String, failure: CommandBus.CommandBusError, defect: Schema.Defect })
      )
      for (const body of [
        "not json",
        JSON.stringify({ command: { _tag: "Probe", n: "one" }, metadata: {} }),
        JSON.stringify({ command: { _tag: "Probe", n: 1, extra: true }, metadata: {} }),
        JSON.stringify({ command: { _tag: "Probe", n: 1 } }),
        JSON.stringify({ command: { _tag: "Probe", n: 1 }, metadata: { commandId: 42 } }),
        JSON.stringify({ command: { _tag: "Probe", n: 1 }, metadata: { note: "x".repeat(200_000) } })
      ]) {
        const msg = yield* Effect.promise(() => connection.request(`${subjectPrefix}.Probe`, body, { timeout: 5000 }))
        const exit = yield* Schema.decode(Reply)(msg.string())
        assert.strictEqual(exit._tag, "Failure")
        const error = yield* Effect.flip(exit)
        assert.strictEqual(error._tag, "CommandValidationError")
        if (body.length > 100_000)
          assert.strictEqual(error._tag === "CommandValidationError" && error.reason, "TooLarge")
      }
      assert.deepStrictEqual(yield* Ref.get(served), [])
    })
  )

  it.scopedLive("a slow command times out with CommandTimeout; a command nobody serves fails fast", () =>
    Effect.gen(function* () {
      const subjectPrefix = prefix()
      yield* Layer.build(
        server({ url: natsUrl, subjectPrefix, name: "slow", probe: (n) => Effect.as(Effect.sleep(n), "late") })
      )
      yield* Effect.gen(function* () {
        const late = yield* Effect.flip(dispatch(new Probe({ n: 3_000 })))
        assert.strictEqual(late._tag, "CommandTimeout")
        assert.strictEqual(yield* dispatch(new Probe({ n: 0 })), "late")
      }).pipe(Effect.provide(client(natsUrl, subjectPrefix, "200 millis")))
      const nobody = yield* Effect.flip(dispatch(new Probe({ n: 0 }))).pipe(Effect.provide(client(natsUrl, prefix())))
      assert.strictEqual(nobody._tag, "CommandTransportError")
    })
  )

  it.scopedLive("a result too large to send is a typed error, not a timeout", () =>
    Effect.gen(function* () {
      const subjectPrefix = prefix()
      yield* Layer.build(
        server({ url: natsUrl, subjectPrefix, name: "big", probe: (n) => Effect.succeed("x".repeat(n)) })
      )
      const error = yield* Effect.flip(dispatch(new Probe({ n: 2_000_000 }))).pipe(
        Effect.provide(client(natsUrl, subjectPrefix, "5 seconds"))
      )
      assert.strictEqual(error._tag, "CommandTransportError")
      assert.include(error.message, "too large")
    })
  )

  it.scopedLive("stopping a server lets the requests it is handling finish their reply", () =>
    Effect.gen(function* () {
      const subjectPrefix = prefix()
      const started = yield* Deferred.make<void>()
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        server({
          url: natsUrl,
          subjectPrefix,
          name: "stopping",
          probe: (n) => Effect.as(Effect.zipRight(Deferred.succeed(started, undefined), Effect.sleep(n)), "finished")
        }),
        scope
      )
      const pending = yield* Effect.fork(
        dispatch(new Probe({ n: 300 })).pipe(Effect.provide(client(natsUrl, subjectPrefix, "5 seconds")))
      )
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* Fiber.join(pending), "finished")
    })
  )

  it.scopedLive(
    "NATS down: dispatch fails with a typed error instead of hanging, and works again after",
    () =>
      Effect.gen(function* () {
        const nats = yield* throwawayNats
        const subjectPrefix = prefix()
        yield* Layer.build(server({ url: nats.url, subjectPrefix, name: "a" }))
        const bus = yield* Layer.build(client(nats.url, subjectPrefix, "2 seconds")).pipe(
          Effect.map((context) => Effect.provide(context))
        )
        assert.strictEqual(yield* dispatch(new Probe({ n: 1 })).pipe(bus), "a:1")
        yield* nats.kill
        const down = yield* Effect.flip(dispatch(new Probe({ n: 2 })).pipe(bus))
        assert.include(["CommandTransportError", "CommandTimeout"], down._tag)
        yield* nats.start
        // both sides reconnect on their own
        const back = yield* dispatch(new Probe({ n: 3 })).pipe(
          bus,
          Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.intersect(Schedule.recurs(50))))
        )
        assert.strictEqual(back, "a:3")
      }),
    60_000
  )

  describe("subscription permissions", () => {
    it.scopedLive(
      "a command subscription the server refuses fails the serving Layer with a typed error",
      () =>
        Effect.gen(function* () {
          const subjectPrefix = prefix()
          const nats = yield* throwawayNatsWith(subscribeDenied([`${subjectPrefix}.Probe`]))
          const error = yield* Effect.flip(Layer.build(server({ url: nats.url, subjectPrefix, name: "a" })))
          assert.strictEqual(error._tag, "CommandBusConfigError")
          assert.include(error.message, `${subjectPrefix}.Probe`)
          assert.include(error.message, "Permissions Violation")
        }),
      30_000
    )
  })
})
