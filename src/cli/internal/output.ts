/**
 * How the CLI answers: text lines for people, one JSON document per line with `--json`, and errors as
 * one line on stderr with exit code 1.
 *
 * @internal
 */
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

/** A failure the CLI reports as one line (what went wrong, and what to do when there is something). */
export class CliError extends Data.TaggedError("CliError")<{ readonly message: string }> {}

/** `--json`: machine output. */
export const json = Options.boolean("json").pipe(Options.withDescription("print JSON, one document per line"))

/** Prints `value` as JSON (bigints as strings), or the text lines `text` makes of it. */
export const print = <A>(asJson: boolean, value: A, text: (value: A) => string | ReadonlyArray<string>) =>
  asJson
    ? Console.log(JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v)))
    : Effect.forEach([text(value)].flat(), (line) => Console.log(line), { discard: true })

/** Rows as left-aligned columns under a header. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): Array<string> => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()
  return [line(header), ...rows.map(line)]
}
