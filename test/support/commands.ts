/**
 * The bank's account commands (from the example), and a `Probe` command whose handler each test
 * controls: shared by the command bus, transport and saga tests.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as CommandBus from "../../src/CommandBus.js"

export {
  AccountCommands as Accounts,
  accountHandlers,
  CloseAccount,
  Deposit,
  OpenAccount,
  Withdraw
} from "../../examples/bank/commands.js"

/** A command with a handler under the test's control. */
export class Probe extends Schema.TaggedRequest<Probe>()("Probe", {
  failure: Schema.Never,
  success: Schema.String,
  payload: { n: Schema.Number }
}) {}

export const Probes = CommandBus.group(Probe)

export const probeHandlers = (probe: (n: number) => Effect.Effect<string, unknown>) =>
  Probes.toLayer({ Probe: (c) => probe(c.n) })
