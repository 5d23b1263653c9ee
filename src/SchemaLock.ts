/**
 * The schema lock: a committed JSON file recording, for every event type and schema version the
 * application's codecs know, the JSON Schema of its stored (encoded) form, and the same for snapshot states
 * and saga states. {@link check} compares the codecs with it, so that a stored version edited in place (the
 * change that stops a release reading its history) fails a test or a CI step instead of a deploy.
 *
 * A lock only grows: a new version is added; a locked one must keep its schema (only changes that every
 * stored value survives pass: an optional field added, a field made optional, more values accepted) or
 * have an upcaster from it. It says nothing about data written by hand or by another program: for that,
 * verify the stored history itself (`HistoryCheck`).
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type * as Aggregate from "./Aggregate.js"
import type * as Projection from "./Projection.js"
import type * as Saga from "./Saga.js"
import { diff, equal, jsonSchemaOf, type JsonSchema, layout, withoutTag } from "./schemaLock/jsonSchema.js"
import type * as Upcaster from "./Upcaster.js"

// ---------------------------------------------------------------------------------------------------
// sources: what the application's codecs and state schemas are
// ---------------------------------------------------------------------------------------------------

/** A codec of the application, named for messages, with the stream categories it reads (all if none). */
export interface CodecSource {
  readonly name: string
  readonly codec: Upcaster.EventCodec<any>
  readonly categories?: ReadonlyArray<string> | undefined
}

/** The schemas a lock describes: the application's event codecs, snapshot states and saga states. */
export interface Sources {
  readonly _tag: "SchemaLockSources"
  readonly codecs: ReadonlyArray<CodecSource>
  readonly snapshots: ReadonlyArray<{
    readonly name: string
    readonly version: number
    readonly schema: Schema.Schema<any, any>
  }>
  readonly sagas: ReadonlyArray<{ readonly name: string; readonly schema: Schema.Schema<any, any> }>
}

/**
 * The sources of an application: its deciders (their event codecs, and their snapshot states under their
 * category), projections (their codecs), sagas (their codecs, and their states under their name) and any
 * other codec, by name. This is what a module given to the CLI's `schema` commands exports.
 */
export const sources = (options: {
  readonly aggregates?: ReadonlyArray<Aggregate.Decider<any, any, any, any>>
  readonly projections?: ReadonlyArray<Pick<Projection.Projection<any, any, any>, "name" | "codec" | "categories">>
  readonly sagas?: ReadonlyArray<Saga.Saga<any, any, any>>
  readonly codecs?: { readonly [name: string]: Upcaster.EventCodec<any> }
}): Sources => ({
  _tag: "SchemaLockSources",
  codecs: [
    ...(options.aggregates ?? []).map((a) => ({
      name: `aggregate ${a.category}`,
      codec: a.codec,
      categories: [a.category]
    })),
    ...(options.projections ?? []).map((p) => ({
      name: `projection ${p.name}`,
      codec: p.codec,
      categories: p.categories
    })),
    ...(options.sagas ?? []).map((s) => ({
      name: `saga ${s.name}`,
      codec: s.projection.codec,
      categories: s.projection.categories
    })),
    ...Object.entries(options.codecs ?? {}).map(([name, codec]) => ({ name: `codec ${name}`, codec }))
  ],
  snapshots: (options.aggregates ?? []).flatMap((a) =>
    a.snapshot === undefined ? [] : [{ name: a.category, version: a.snapshot.version ?? 1, schema: a.snapshot.state }]
  ),
  sagas: (options.sagas ?? []).map((s) => ({ name: s.name, schema: s.stateSchema }))
})

/** Whether `value` is {@link Sources} (what a module loaded by the CLI must export). */
export const isSources = (value: unknown): value is Sources =>
  typeof value === "object" && value !== null && (value as Sources)._tag === "SchemaLockSources"

// ---------------------------------------------------------------------------------------------------
// the lock
// ---------------------------------------------------------------------------------------------------

export type { JsonSchema } from "./schemaLock/jsonSchema.js"

/** The lock file's content. Versions are keys (`"1"`, `"2"`). */
export interface Lock {
  readonly lockVersion: 1
  /** Stored event data (without `_tag`), by event type and schema version. */
  readonly events: { readonly [type: string]: { readonly [version: string]: JsonSchema } }
  /** Encoded snapshot states, by aggregate category and state version. */
  readonly snapshots: { readonly [aggregate: string]: { readonly [version: string]: JsonSchema } }
  /** Encoded saga states, by saga name (saga states have no version). */
  readonly sagas: { readonly [saga: string]: JsonSchema }
}

/** The sources cannot be locked (two codecs disagree, a schema has no JSON Schema), or a lock file is invalid. */
export class SchemaLockError extends Schema.TaggedError<SchemaLockError>()("SchemaLockError", {
  problems: Schema.Array(Schema.String)
}) {
  override get message() {
    return this.problems.join("; ")
  }
}

/** One difference between the lock and the sources. */
export interface Change {
  readonly kind: "event" | "snapshot" | "saga"
  /** The event type, aggregate category or saga name. */
  readonly name: string
  /** The schema version (none for a saga). */
  readonly version?: number
  /** The field concerned (`address.city`, `lines[]`), empty for the whole schema. */
  readonly field: string
  /** The whole sentence: what, where, and what to do. */
  readonly message: string
}

/** A locked schema changed in a way stored data may not survive, or a locked version is no longer read. */
export class SchemaLockMismatch extends Schema.TaggedError<SchemaLockMismatch>()("SchemaLockMismatch", {
  changes: Schema.Array(
    Schema.Struct({
      kind: Schema.Literal("event", "snapshot", "saga"),
      name: Schema.String,
      version: Schema.optional(Schema.Int),
      field: Schema.String,
      message: Schema.String
    })
  )
}) {
  override get message() {
    return `the schemas changed incompatibly with the lock: ${this.changes.map((c) => c.message).join("; ")}`
  }
}

/** The outcome of a comparison: what the lock lacks, what changed compatibly, what broke, and the updated lock. */
export interface Comparison {
  /** Versions (and snapshot states, saga states) the lock does not have yet. */
  readonly added: ReadonlyArray<string>
  /** Locked schemas changed in ways every stored value survives. */
  readonly compatible: ReadonlyArray<Change>
  /** Locked schemas changed in ways stored values may not survive, or locked versions no longer read. */
  readonly breaking: ReadonlyArray<Change>
  /**
   * The lock to write: additions and changes recorded, and locked event versions no longer read dropped.
   * Without breaking changes that is the lock with its additions and compatible changes; with some, it
   * is a new baseline (for data nothing has stored yet: the CLI writes it only with `--force`).
   */
  readonly lock: Lock
}

/** The empty lock. */
export const empty: Lock = { lockVersion: 1, events: {}, snapshots: {}, sagas: {} }

/** The lock describing `sources` alone (fails if two codecs disagree on a version, or a schema has no JSON Schema). */
export const fromSources = (sources: Sources): Effect.Effect<Lock, SchemaLockError> =>
  Effect.map(describe(sources), (current) => current.lock)

/**
 * Compares `sources` with a lock. A version the lock lacks is `added`; a locked schema changed only in
 * ways every stored value survives (an optional field added, a required one made optional, more enum
 * values or union members) is `compatible`; anything else is `breaking`, each change naming the type,
 * version and field. A locked event version the codecs neither read at their current version nor upcast
 * from is `breaking` (its stored events would not decode); older snapshot versions and missing sagas are not
 * (snapshots of another version are ignored by design).
 */
export const compare = (lock: Lock, sources: Sources): Effect.Effect<Comparison, SchemaLockError> =>
  Effect.map(describe(sources), (current) => compareWith(lock, current))

/**
 * {@link compare}, failing with {@link SchemaLockMismatch} on breaking changes; with `unlocked: "fail"`,
 * also on additions and compatible changes not yet recorded (the lock is not up to date). Succeeds with
 * the comparison (its `lock` is what to write).
 */
export const check = (
  lock: Lock,
  sources: Sources,
  options?: { readonly unlocked?: "pass" | "fail" }
): Effect.Effect<Comparison, SchemaLockMismatch | SchemaLockError> =>
  Effect.flatMap(compare(lock, sources), (comparison) => {
    const stale =
      options?.unlocked === "fail"
        ? [
            ...comparison.added.map((what): Change => ({
              kind: what.startsWith("event") ? "event" : what.startsWith("snapshot") ? "snapshot" : "saga",
              name: what,
              field: "",
              message: `${what} is not in the lock: write the lock (effect-eventsourcing schema lock write)`
            })),
            ...comparison.compatible.map((c) => ({
              ...c,
              message: `${c.message}, not yet recorded: write the lock (effect-eventsourcing schema lock write)`
            }))
          ]
        : []
    const changes = [...comparison.breaking, ...stale]
    return changes.length === 0 ? Effect.succeed(comparison) : Effect.fail(new SchemaLockMismatch({ changes }))
  })

// ---------------------------------------------------------------------------------------------------
// the file
// ---------------------------------------------------------------------------------------------------

const VersionKey = Schema.String.pipe(Schema.pattern(/^[1-9][0-9]*$/))
const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const Versions = Schema.Record({ key: VersionKey, value: JsonObject })
const LockFile = Schema.Struct({
  lockVersion: Schema.Literal(1),
  events: Schema.Record({ key: Schema.String, value: Versions }),
  snapshots: Schema.Record({ key: Schema.String, value: Versions }),
  sagas: Schema.Record({ key: Schema.String, value: JsonObject })
})

/** A lock from the text of a lock file. */
export const parse = (text: string): Effect.Effect<Lock, SchemaLockError> =>
  Either.try(() => JSON.parse(text) as unknown).pipe(
    Either.mapLeft((error) => new SchemaLockError({ problems: [`the lock file is not JSON: ${String(error)}`] })),
    Either.flatMap(decodeEither)
  )

/** A lock from the parsed content of a lock file (a JSON import of it, say). */
export const decode = (json: unknown): Effect.Effect<Lock, SchemaLockError> => decodeEither(json)

const decodeEither = (json: unknown): Either.Either<Lock, SchemaLockError> =>
  Either.mapLeft(
    Schema.decodeUnknownEither(LockFile)(json),
    (error) => new SchemaLockError({ problems: [`the lock file is not a schema lock: ${error.message}`] })
  )

/**
 * The text of a lock file: keys in a stable order (types, categories and names sorted, versions ascending),
 * two-space indentation, a final newline; laid out as Prettier lays out JSON, so a formatter leaves it alone.
 */
export const format = (lock: Lock): string => {
  const sorted = {
    lockVersion: lock.lockVersion,
    events: sortKeys(lock.events),
    snapshots: sortKeys(lock.snapshots),
    sagas: sortKeys(lock.sagas)
  }
  return `${layout(sorted, "", "")}\n`
}

// ---------------------------------------------------------------------------------------------------
// internals
// ---------------------------------------------------------------------------------------------------

/**
 * What the sources say now: the lock of their current versions (and of the older ones their upcasters
 * declare a Schema for), the current version of each type, and the versions read through upcasters.
 */
interface Current {
  readonly lock: Lock
  readonly versions: ReadonlyMap<string, number>
  /** `type v<version>` of every (type, version) an upcaster reads. */
  readonly upcast: ReadonlySet<string>
}

const describe = (sources: Sources): Effect.Effect<Current, SchemaLockError> =>
  Effect.suspend(() => {
    const problems: Array<string> = []
    const events: Record<string, Record<string, JsonSchema>> = {}
    const versions = new Map<string, number>()
    const owners = new Map<string, string>()
    const upcast = new Set<string>()
    for (const { codec, name } of sources.codecs) {
      for (const [type, schema] of codec.schemas) {
        const version = codec.currentVersion(type)
        const described = jsonSchemaOf(schema, `event ${type} v${version} (${name})`, problems)
        if (described === undefined) continue
        const data = withoutTag(described)
        const seen = events[type]
        if (seen === undefined) {
          events[type] = { [version]: data }
          versions.set(type, version)
          owners.set(`${type} v${version}`, name)
        } else if (seen[version] === undefined) {
          problems.push(
            `${owners.get(`${type} v${versions.get(type)}`)} and ${name} disagree on the current version of ${type}`
          )
        } else if (!equal(seen[version], data)) {
          problems.push(`${owners.get(`${type} v${version}`)} and ${name} describe ${type} v${version} differently`)
        }
      }
    }
    // older versions, as the upcasters that read them declare them (Upcaster.schema): history the lock keeps
    for (const { codec, name } of sources.codecs) {
      for (const u of codec.upcasters) {
        const at = `${u.from.type} v${u.from.version}`
        upcast.add(at)
        if (u.fromSchema === undefined) continue
        const described = jsonSchemaOf(u.fromSchema, `event ${at} (the upcaster of ${name})`, problems)
        if (described === undefined) continue
        const data = withoutTag(described)
        const seen = events[u.from.type]?.[u.from.version]
        if (seen === undefined) {
          events[u.from.type] = { ...events[u.from.type], [u.from.version]: data }
          owners.set(at, `the upcaster of ${name}`)
        } else if (!equal(seen, data)) {
          problems.push(`${owners.get(at)} and the upcaster of ${name} describe ${at} differently`)
        }
      }
    }
    const snapshots: Record<string, Record<string, JsonSchema>> = {}
    for (const { name, schema, version } of sources.snapshots) {
      const described = jsonSchemaOf(schema, `the snapshot state of ${name}`, problems)
      if (described !== undefined) snapshots[name] = { [version]: described }
    }
    const sagas: Record<string, JsonSchema> = {}
    for (const { name, schema } of sources.sagas) {
      const described = jsonSchemaOf(schema, `the state of saga ${name}`, problems)
      if (described !== undefined) sagas[name] = described
    }
    return problems.length > 0
      ? Effect.fail(new SchemaLockError({ problems }))
      : Effect.succeed({ lock: { lockVersion: 1, events, snapshots, sagas }, versions, upcast })
  })

const compareWith = (lock: Lock, current: Current): Comparison => {
  const added: Array<string> = []
  const compatible: Array<Change> = []
  const breaking: Array<Change> = []
  const events: Record<string, Record<string, JsonSchema>> = copyVersions(lock.events)
  for (const [type, versions] of Object.entries(lock.events)) {
    const now = current.lock.events[type]
    for (const [version, locked] of Object.entries(versions)) {
      const subject = { kind: "event" as const, name: type, version: Number(version) }
      const label = `event ${type} v${version}`
      if (now?.[version] !== undefined) {
        const result = diff(locked, now[version])
        const advice =
          current.versions.get(type) === Number(version)
            ? `: stored ${type} v${version} events may not decode; restore it, or make the change v${Number(version) + 1} with an upcaster from v${version}`
            : `: the upcaster from v${version} no longer reads what is stored; restore the schema it reads`
        for (const d of result.breaking)
          breaking.push({ ...subject, field: d.field, message: `${label}: ${d.message}${advice}` })
        for (const d of result.compatible)
          compatible.push({ ...subject, field: d.field, message: `${label}: ${d.message}` })
        events[type]![version] = now[version]
      } else if (!current.upcast.has(`${type} v${version}`)) {
        const currentVersion = current.versions.get(type)
        delete events[type]![version]
        if (Object.keys(events[type]!).length === 0) delete events[type]
        breaking.push({
          ...subject,
          field: "",
          message:
            currentVersion === undefined
              ? `${label} is locked, but no codec reads ${type} nor upcasts from it: its stored events would not decode (add an upcaster, Upcaster.drop to ignore them)`
              : `${label} is locked, but the codecs are at v${currentVersion} with no upcaster from v${version}: its stored events would not decode`
        })
      }
    }
  }
  for (const [type, versions] of Object.entries(current.lock.events)) {
    for (const [version, schema] of Object.entries(versions)) {
      if (lock.events[type]?.[version] === undefined) {
        added.push(`event ${type} v${version}`)
        events[type] = { ...events[type], [version]: schema }
      }
    }
  }

  const snapshots: Record<string, Record<string, JsonSchema>> = copyVersions(lock.snapshots)
  for (const [name, versions] of Object.entries(current.lock.snapshots)) {
    for (const [version, schema] of Object.entries(versions)) {
      const locked = lock.snapshots[name]?.[version]
      const label = `snapshot state of ${name} v${version}`
      snapshots[name] = { ...snapshots[name], [version]: schema }
      if (locked === undefined) {
        added.push(label)
        continue
      }
      const subject = { kind: "snapshot" as const, name, version: Number(version) }
      const result = diff(locked, schema)
      const advice = `: stored snapshots would no longer decode (or decode wrong); bump the snapshot version instead`
      for (const d of result.breaking)
        breaking.push({ ...subject, field: d.field, message: `${label}: ${d.message}${advice}` })
      for (const d of result.compatible)
        compatible.push({ ...subject, field: d.field, message: `${label}: ${d.message}` })
    }
  }

  const sagas: Record<string, JsonSchema> = { ...lock.sagas }
  for (const [name, schema] of Object.entries(current.lock.sagas)) {
    const locked = lock.sagas[name]
    const label = `state of saga ${name}`
    sagas[name] = schema
    if (locked === undefined) {
      added.push(label)
      continue
    }
    const result = diff(locked, schema)
    const advice = `: stored instances of ${name} would no longer decode; saga states have no version, so keep changes compatible (optional fields)`
    for (const d of result.breaking)
      breaking.push({ kind: "saga", name, field: d.field, message: `${label}: ${d.message}${advice}` })
    for (const d of result.compatible)
      compatible.push({ kind: "saga", name, field: d.field, message: `${label}: ${d.message}` })
  }
  return { added, compatible, breaking, lock: { lockVersion: 1, events, snapshots, sagas } }
}

const copyVersions = (record: Lock["events"]): Record<string, Record<string, JsonSchema>> =>
  Object.fromEntries(Object.entries(record).map(([k, v]) => [k, { ...v }]))

const sortKeys = <A>(record: { readonly [key: string]: A }): { readonly [key: string]: A } =>
  Object.fromEntries(
    Object.keys(record)
      .sort()
      .map((k) => [k, record[k]!])
  )
