/**
 * E1: end to end at a steady rate: 200 commands per second for 20 seconds, each through the command bus
 * to a decider (load, decide, append) on its own stream, and a live projection writing the read model.
 * Latency per command: from its dispatch to its event's projection handler running in the batch's
 * transaction (the commit follows at once). Counts gaps and duplicates in the read model.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Aggregate from "../../src/Aggregate.js"
import * as CommandBus from "../../src/CommandBus.js"
import * as Projection from "../../src/Projection.js"
import { type Options, payload, percentile, type Result, result, scaled } from "../harness.js"
import { balances, countGaps, createTable, targets } from "./projection.js"

const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Number, note: Schema.String })

const Ledger = Aggregate.make({
  category: "E",
  events: Deposited,
  initialState: 0,
  evolve: (total: number, event) => total + event.amount,
  decide: (command: { readonly amount: number }) =>
    Effect.succeed([Deposited.make({ ...payload, amount: command.amount })])
})

class Deposit extends Schema.TaggedRequest<Deposit>()("Deposit", {
  failure: Schema.Never,
  success: Schema.Number,
  payload: { id: Schema.String, amount: Schema.Number }
}) {}

const Commands = CommandBus.group(Deposit)
const handle = Aggregate.handler(Ledger)
const handlers = Commands.toLayer({
  Deposit: ({ amount, id }) => Effect.map(Effect.orDie(handle(id, { amount })), (r) => r.version)
})

export const E1 = async (options: Options): Promise<ReadonlyArray<Result>> => {
  const rate = 200
  const commands = scaled(options, rate * 20, 100)
  const results: Array<Result> = []
  for (const makeTarget of targets(options)) {
    const target = makeTarget()
    const sentAt = new Map<string, number>()
    const handledAt = new Map<string, number>()
    const projection = balances(target.table, 1, (events) => {
      const now = performance.now()
      for (const event of events) if (!handledAt.has(event.streamId)) handledAt.set(event.streamId, now)
    })
    const bus = CommandBus.layer({ groups: [Commands] }).pipe(Layer.provide(handlers))
    const run = await Effect.runPromise(
      Effect.gen(function* () {
        yield* createTable(target.table)
        const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "1 second" }))
        const dispatcher = yield* CommandBus.CommandBus
        const start = performance.now()
        const inFlight: Array<Fiber.RuntimeFiber<number, unknown>> = []
        for (let i = 0; i < commands; i++) {
          const due = start + (i * 1000) / rate
          const wait = due - performance.now()
          if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
          const id = String(i)
          sentAt.set(`E-${id}`, performance.now())
          inFlight.push(yield* Effect.fork(dispatcher.dispatch(new Deposit({ id, amount: 1 }))))
        }
        yield* Fiber.joinAll(inFlight)
        const deadline = performance.now() + 30_000
        while (handledAt.size < commands && performance.now() < deadline) yield* Effect.sleep("20 millis")
        yield* Fiber.interrupt(runner)
        const counts = yield* countGaps(
          target.table,
          new Map(Array.from({ length: commands }, (_, i) => [`E-${i}`, 1] as const))
        )
        return { counts, seconds: (performance.now() - start) / 1000 }
      }).pipe(Effect.provide(Layer.provideMerge(bus, target.layer)), Effect.orDie)
    )
    const latencies = [...sentAt].map(([id, at]) => Math.max(0, (handledAt.get(id) ?? Infinity) - at))
    results.push(
      result({
        id: "E1",
        store: target.name,
        value: percentile(latencies, 99)!,
        unit: "ms latency p99",
        notes: `${commands} commands at ${rate}/s, command -> projection handler; target p99 < 100 ms`,
        extra: {
          p50_ms: Number(percentile(latencies, 50)!.toFixed(2)),
          p99_ms: Number(percentile(latencies, 99)!.toFixed(2)),
          gaps: run.counts.gaps,
          duplicates: run.counts.duplicates
        }
      })
    )
  }
  return results
}
