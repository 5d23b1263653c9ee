/**
 * Several hosts in one PostgreSQL URL, as libpq takes them (`postgres://user@h1:5432,h2:5433/db?
 * target_session_attrs=read-write`), for `pg`, which takes one host: each new connection of the pool goes
 * to the first host, in turn from the one that matched last, that accepts a connection and whose session
 * has the attributes asked for (read-write: the primary after a failover). A host is checked on a
 * connection of its own, closed at once; then the pool's connection is made to it.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import pg from "pg"

/** libpq's `target_session_attrs`. */
export type SessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"

const sessionAttrs: ReadonlyArray<SessionAttrs> = [
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby"
]

/** A host and its port. */
export interface Target {
  readonly host: string
  readonly port: number
}

/** A URL as `pg` takes it (its first host), the hosts to try, and the attributes a session must have. */
export interface Parsed {
  readonly url: URL
  readonly targets: ReadonlyArray<Target>
  readonly attrs: SessionAttrs
}

/**
 * Reads the hosts of `text` (a port left out is 5432, as libpq reads a URL) and takes
 * `target_session_attrs` out of it. Throws on a URL it cannot read, as `new URL` does.
 */
export const parse = (text: string): Parsed => {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*@)?([^/?#]*)(.*)$/i.exec(text)
  const hostList = match?.[3] ?? ""
  const hosts = hostList.split(",").map((entry) => {
    const bracketed = /^(\[[^\]]*\])(?::(\d*))?$/.exec(entry)
    const [host, port] = bracketed !== null ? [bracketed[1]!, bracketed[2]] : (entry.split(":") as [string, string?])
    return { host, port: port === undefined || port === "" ? undefined : Number(port) }
  })
  const targets = hosts.map((h) => ({ host: h.host, port: h.port ?? 5432 }))
  const first = targets[0]!
  const url = new URL(
    match === null || hosts.length < 2 ? text : `${match[1]}${match[2] ?? ""}${first.host}:${first.port}${match[4]}`
  )
  const asked = url.searchParams.get("target_session_attrs") ?? "any"
  url.searchParams.delete("target_session_attrs")
  if (!sessionAttrs.includes(asked as SessionAttrs)) {
    throw new TypeError(`target_session_attrs must be one of ${sessionAttrs.join(", ")}, not ${asked}`)
  }
  return {
    url,
    targets: targets.map((t) => ({ ...t, host: t.host.replace(/^\[(.*)\]$/, "$1") })),
    attrs: asked as SessionAttrs
  }
}

/** Whether a session of a server in (or out of) recovery, read-only (or not) by default, has `attrs`. */
const matches = (attrs: SessionAttrs, recovery: boolean, readOnly: boolean): boolean => {
  switch (attrs) {
    case "read-write":
      return !readOnly
    case "read-only":
      return readOnly
    case "primary":
      return !recovery
    case "standby":
    case "prefer-standby":
      return recovery
    case "any":
      return true
  }
}

/** `config` for `target` (a connection string's host would win over a `host` beside it). */
const at = (config: pg.ClientConfig, target: Target): pg.ClientConfig => {
  if (config.connectionString === undefined) return { ...config, host: target.host, port: target.port }
  const url = new URL(config.connectionString)
  url.hostname = target.host.includes(":") ? `[${target.host}]` : target.host
  url.port = String(target.port)
  return { ...config, connectionString: url.toString() }
}

/** How long checking one host may take: one that does not answer is passed over after it. */
const checkTimeoutMillis = 5_000

/** Connects to `target` and tells whether its sessions have `attrs`; fails if it cannot be reached. */
const check = (config: pg.ClientConfig, target: Target, attrs: SessionAttrs): Effect.Effect<boolean, unknown> =>
  Effect.acquireUseRelease(
    Effect.suspend(() => {
      const client = new pg.Client({ ...at(config, target), connectionTimeoutMillis: checkTimeoutMillis })
      client.on("error", () => {})
      return Effect.as(
        Effect.tryPromise(() => client.connect()),
        client
      )
    }),
    (client) =>
      attrs === "any"
        ? Effect.succeed(true)
        : Effect.map(
            Effect.tryPromise(() =>
              client.query<{ readonly recovery: boolean; readonly read_only: string }>(
                "select pg_is_in_recovery() as recovery, current_setting('transaction_read_only') as read_only"
              )
            ),
            ({ rows: [row] }) => row !== undefined && matches(attrs, row.recovery, row.read_only === "on")
          ),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  ).pipe(Effect.timeoutFail({ duration: checkTimeoutMillis * 2, onTimeout: () => new Error("timed out") }))

/**
 * A `pg.Client` class for the pool: each client connects to the first of `targets`, from the one that
 * matched last, whose sessions have `attrs` (with `prefer-standby`, the first standby, else the first that
 * answers); it fails to connect, naming each host's problem, when none does.
 */
export const clientClass = (targets: ReadonlyArray<Target>, attrs: SessionAttrs): typeof pg.Client => {
  let preferred = 0
  const choose = (config: pg.ClientConfig): Effect.Effect<Target, Error> =>
    Effect.gen(function* () {
      const problems: Array<string> = []
      const passes: ReadonlyArray<SessionAttrs> = attrs === "prefer-standby" ? ["standby", "any"] : [attrs]
      for (const pass of passes) {
        for (let i = 0; i < targets.length; i++) {
          const index = (preferred + i) % targets.length
          const target = targets[index]!
          const outcome = yield* Effect.either(check(config, target, pass))
          if (outcome._tag === "Right" && outcome.right) {
            preferred = index
            return target
          }
          problems.push(
            `${target.host}:${target.port} ${outcome._tag === "Left" ? describe(outcome.left) : `is not ${pass}`}`
          )
        }
      }
      return yield* Effect.fail(new Error(`no server is ${attrs} (target_session_attrs): ${problems.join("; ")}`))
    })

  return class FailoverClient extends pg.Client {
    private readonly settings: pg.ClientConfig
    constructor(config?: string | pg.ClientConfig) {
      super(config)
      this.settings = typeof config === "string" ? { connectionString: config } : { ...config }
    }
    override connect(): Promise<pg.Client>
    override connect(callback: (err: Error) => void): void
    override connect(callback?: (err: Error) => void): Promise<pg.Client> | void {
      const connected = Effect.runPromise(Effect.either(choose(this.settings))).then((chosen) => {
        if (chosen._tag === "Left") return Promise.reject(chosen.left)
        // what `pg.Client` connects to: read when it connects, not before
        const self = this as unknown as { host: string; port: number }
        self.host = chosen.right.host
        self.port = chosen.right.port
        return super.connect()
      })
      if (callback === undefined) return connected.then(() => this)
      connected.then(
        () => callback(undefined as unknown as Error),
        (error: Error) => callback(error)
      )
    }
  }
}

const describe = (error: unknown): string => {
  // the promise's own error, not `Effect.tryPromise`'s wrapper
  const cause =
    typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "UnknownException"
      ? (error as { cause?: unknown }).cause
      : error
  return cause instanceof Error ? cause.message : String(cause)
}
