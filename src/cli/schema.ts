/**
 * `schema`: the application's contracts with its stored data. `schema lock write|check` keep and check the
 * schema lock (see `SchemaLock`); `schema verify` decodes the stored log with the application's codecs (see
 * `HistoryCheck`). The codecs come from a module of the application (`--module`), imported dynamically:
 * it exports (as `schemas`, or the name `--export` gives) what `SchemaLock.sources` returns. A TypeScript
 * module needs a loader (`node --import tsx`) or its compiled JavaScript.
 */
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Terminal from "@effect/platform/Terminal"
import * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as EventStore from "../EventStore.js"
import * as HistoryCheck from "../HistoryCheck.js"
import * as SchemaLock from "../SchemaLock.js"
import { withStore, storeError } from "./events.js"
import * as Connection from "./internal/connection.js"
import { CliError, json, print, table } from "./internal/output.js"

const module = Options.text("module").pipe(
  Options.withDescription("the application's module exporting SchemaLock.sources(...) (a .js file, or .ts under tsx)")
)
const exportName = Options.text("export").pipe(
  Options.withDescription("the name of that export"),
  Options.withDefault("schemas")
)
const lockFile = Options.text("lock").pipe(
  Options.withDescription("the lock file"),
  Options.withDefault("schema-lock.json")
)

/** The sources the module exports. */
const load = (file: string, name: string): Effect.Effect<SchemaLock.Sources, CliError> =>
  Effect.tryPromise({
    try: () => import(pathToFileURL(path.resolve(file)).href) as Promise<Record<string, unknown>>,
    catch: (error) =>
      new CliError({
        message:
          `cannot load ${file}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}` +
          ((error as { readonly code?: unknown }).code === "ERR_UNKNOWN_FILE_EXTENSION"
            ? " (a TypeScript module needs node --import tsx, or give its compiled .js)"
            : "")
      })
  }).pipe(
    Effect.filterOrFail(
      (exports) => SchemaLock.isSources(exports[name]),
      (exports) =>
        new CliError({
          message: `${file} has no export ${name} made by SchemaLock.sources (it exports: ${Object.keys(exports).join(", ") || "nothing"})`
        })
    ),
    Effect.map((exports) => exports[name] as SchemaLock.Sources)
  )

/** The lock in `file`, or none if there is no such file. */
const readLock = (file: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    if (!(yield* Effect.orElseSucceed(fs.exists(file), () => false))) return Option.none<SchemaLock.Lock>()
    const text = yield* Effect.mapError(fs.readFileString(file), (e) => new CliError({ message: e.message }))
    return Option.some(
      yield* Effect.mapError(SchemaLock.parse(text), (e) => new CliError({ message: `${file}: ${e.message}` }))
    )
  })

const compared = (lock: SchemaLock.Lock, sources: SchemaLock.Sources) =>
  Effect.mapError(SchemaLock.compare(lock, sources), (e) => new CliError({ message: e.message }))

/** The comparison's lines for people. */
const describe = (c: SchemaLock.Comparison, added: string, compatible: string): Array<string> => [
  ...c.added.map((a) => `${added} ${a}`),
  ...c.compatible.map((x) => `${compatible} ${x.message}`),
  ...c.breaking.map((x) => `breaking: ${x.message}`)
]

const changesJson = (c: SchemaLock.Comparison) => ({
  added: c.added,
  compatible: c.compatible.map((x) => x.message),
  breaking: c.breaking
})

/** `schema lock write`: records the current schemas (refusing breaking changes unless `--force`). */
export const write = Command.make(
  "write",
  {
    module,
    export: exportName,
    lock: lockFile,
    json,
    force: Options.boolean("force").pipe(
      Options.withDescription("write even over breaking changes (when no stored data has the locked versions)")
    )
  },
  (options) =>
    Effect.gen(function* () {
      const sources = yield* load(options.module, options.export)
      const existing = yield* readLock(options.lock)
      const comparison = yield* compared(
        Option.getOrElse(existing, () => SchemaLock.empty),
        sources
      )
      if (comparison.breaking.length > 0 && !options.force) {
        yield* print(options.json, { written: false, ...changesJson(comparison) }, () =>
          describe(comparison, "", "").filter((line) => line.startsWith("breaking"))
        )
        return yield* new CliError({
          message: `${comparison.breaking.length} breaking change(s): the lock is not written (--force writes it anyway)`
        })
      }
      const lock = comparison.lock
      const fs = yield* FileSystem.FileSystem
      yield* Effect.mapError(
        fs.writeFileString(options.lock, SchemaLock.format(lock)),
        (e) => new CliError({ message: e.message })
      )
      const counts = `${Object.values(lock.events).reduce((n, v) => n + Object.keys(v).length, 0)} event versions, ${
        Object.keys(lock.snapshots).length
      } snapshot states, ${Object.keys(lock.sagas).length} saga states`
      yield* print(options.json, { written: true, lock: options.lock, ...changesJson(comparison) }, () => [
        ...describe(comparison, "added", "recorded"),
        `wrote ${options.lock}: ${counts}`
      ])
    })
).pipe(Command.withDescription("write the schema lock: record new versions and compatible changes"))

/** `schema lock check`: exit 1 on breaking changes (with `--strict`, also when the lock is not up to date). */
export const check = Command.make(
  "check",
  {
    module,
    export: exportName,
    lock: lockFile,
    json,
    strict: Options.boolean("strict").pipe(
      Options.withDescription("also fail when versions or compatible changes are not recorded in the lock yet")
    )
  },
  (options) =>
    Effect.gen(function* () {
      const sources = yield* load(options.module, options.export)
      const lock = yield* readLock(options.lock)
      if (Option.isNone(lock)) {
        return yield* new CliError({ message: `no lock at ${options.lock}: write one with schema lock write` })
      }
      const comparison = yield* compared(lock.value, sources)
      const stale = comparison.added.length + comparison.compatible.length
      const ok = comparison.breaking.length === 0 && (!options.strict || stale === 0)
      yield* print(options.json, { ok, ...changesJson(comparison) }, () => [
        ...describe(comparison, "not in the lock yet:", "compatible, not recorded yet:"),
        ...(ok
          ? [`the schemas match ${options.lock}${stale > 0 ? ` (write it to record ${stale} change(s))` : ""}`]
          : [])
      ])
      if (!ok) {
        return yield* new CliError({
          message:
            comparison.breaking.length > 0
              ? `${comparison.breaking.length} breaking change(s) against ${options.lock}`
              : `${options.lock} is not up to date: write it with schema lock write`
        })
      }
    })
).pipe(Command.withDescription("check the application's schemas against the lock (exit 1 on breaking changes)"))

/** `schema verify`: decodes the stored log with the application's codecs. */
export const verify = Command.make(
  "verify",
  {
    ...Connection.options,
    module,
    export: exportName,
    json,
    sample: Options.integer("sample").pipe(
      Options.withDescription("decode at most this many events of each (type, version); default all"),
      Options.optional
    ),
    timeLimit: Options.integer("time-limit").pipe(
      Options.withDescription("stop reading after this many seconds (the report says how far it got)"),
      Options.optional
    )
  },
  (options) =>
    Effect.gen(function* () {
      const sources = yield* load(options.module, options.export)
      const terminal = yield* Terminal.Terminal
      const tty = yield* terminal.isTTY
      const report = yield* withStore(options, (events) =>
        Effect.mapError(
          HistoryCheck.verify(sources, {
            ...Option.match(options.sample, { onNone: () => ({}), onSome: (sample) => ({ sample }) }),
            ...Option.match(options.timeLimit, {
              onNone: () => ({}),
              onSome: (s) => ({ timeLimit: Duration.seconds(s) })
            }),
            // progress on stderr: stdout is the report
            onProgress: (p) => {
              const eta = Option.match(p.etaSeconds, { onNone: () => "", onSome: (s) => `, ${s} s left` })
              const line = `${p.read} events read (~${p.done}/${p.total} positions, ${Math.round(p.rate)}/s${eta}), ${p.failed} failed`
              return tty ? Effect.orDie(terminal.display(`\r${line}`)) : Console.error(line)
            }
          }).pipe(Effect.provideService(EventStore.EventStore, events)),
          storeError
        )
      )
      if (tty) yield* Effect.orDie(terminal.display("\n"))
      const failing = report.types.filter((t) => t.failed > 0)
      // plain JSON: the checkpoint as printed elsewhere (TRANSACTION:POSITION), null for none
      const shown = {
        ...report,
        last: Option.match(report.last, { onNone: () => null, onSome: (c) => `${c.transaction}:${c.position}` }),
        heldBack: Option.match(report.heldBack, {
          onNone: () => null,
          onSome: (h) => ({
            events: h.events,
            since: DateTime.formatIso(h.since),
            blocker: Option.getOrNull(h.blocker)
          })
        })
      }
      yield* print(options.json, shown, (r) => [
        `read ${r.read} events${r.complete ? "" : ` (stopped by the time limit at ${r.last ?? "the start"})`}, decoded ${r.decoded}, ${r.failed} failed`,
        ...(r.heldBack === null
          ? []
          : [
              `${r.heldBack.events} committed event(s) since ${r.heldBack.since} not readable yet (held back by an open transaction${r.heldBack.blocker === null ? "" : `: ${r.heldBack.blocker}`}): verify again later`
            ]),
        ...table(
          ["type", "version", "read", "decoded", "failed", "example"],
          r.types.map((t) => [
            t.type,
            String(t.version),
            String(t.read),
            t.known ? String(t.decoded) : "-",
            t.known ? String(t.failed) : "-",
            t.known
              ? t.examples[0] === undefined
                ? ""
                : `${t.examples[0].streamId}@${t.examples[0].version} (${t.examples[0].codec}): ${t.examples[0].reason}: ${t.examples[0].message.split("\n")[0]}`
              : "no codec reads it"
          ])
        )
      ])
      if (failing.length > 0) {
        return yield* new CliError({
          message: `${report.failed} stored event(s) do not decode, of ${failing.map((t) => `${t.type} v${t.version}`).join(", ")}`
        })
      }
    })
).pipe(
  Command.withDescription("decode the stored log with the application's codecs; exit 1 if any event does not decode")
)

export const command = Command.make("schema").pipe(
  Command.withDescription("the schema lock, and verifying the stored history against the application's codecs"),
  Command.withSubcommands([
    Command.make("lock").pipe(
      Command.withDescription("write or check the schema lock"),
      Command.withSubcommands([write, check])
    ),
    verify
  ])
)
