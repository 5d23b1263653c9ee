/**
 * The bank's HTTP API under hostile input: every request built from bad input gets a 4xx, never a 5xx
 * (and never "try again"), and afterwards the application still answers `/health` and handles a normal
 * command. The application runs in process, as `npm start` wires it, on a fresh SQLite file; the cases a
 * store treats differently (a NUL that PostgreSQL refuses outright) run on a fresh PostgreSQL database too.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Bank from "../../examples/bank/app.js"
import { jsonDepth, maxJsonDepth } from "../../examples/bank/http.js"
import { freshPgDatabase } from "../support/sql.js"

/** The bank application in this process, configured by `env` as `npm start` is; its base URL. */
const serve = (env: Record<string, string>) =>
  Effect.gen(function* () {
    const config = yield* Effect.withConfigProvider(
      Bank.config,
      ConfigProvider.fromMap(new Map(Object.entries({ PORT: "0", ...env })))
    )
    const context = yield* Layer.build(Bank.layer(config))
    const address = Context.get(context, HttpServer.HttpServer).address
    return `http://127.0.0.1:${address._tag === "TcpAddress" ? address.port : 0}`
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "bank-http-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

interface Answer {
  readonly status: number
  readonly text: string
}

/** One request; a connection closed by the server counts as status 0 (never a hang: fetch is bounded). */
const send = (
  url: string,
  request: {
    readonly method?: string
    readonly path: string
    readonly headers?: Record<string, string>
    readonly body?: string
  }
) =>
  Effect.promise((): Promise<Answer> =>
    fetch(`${url}${request.path}`, {
      method: request.method ?? "GET",
      headers: request.headers ?? {},
      signal: AbortSignal.timeout(60_000),
      ...(request.body === undefined ? {} : { body: request.body })
    }).then(
      (response) => response.text().then((text) => ({ status: response.status, text })),
      (error: Error) => ({ status: 0, text: String(error.cause ?? error) })
    )
  )

const json = { "content-type": "application/json" }
const post = (path: string, body: unknown, headers: Record<string, string> = json) => ({
  method: "POST",
  path,
  headers,
  body: typeof body === "string" ? body : JSON.stringify(body)
})
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

/** After any request, the application is well: healthy, and a normal command goes through. */
const stillServes = (url: string, after: string) =>
  Effect.gen(function* () {
    const health = yield* send(url, { path: "/health" })
    assert.strictEqual(health.status, 200, `health after ${after}: ${health.text}`)
    const deposit = yield* send(url, post("/accounts/steady/deposit", { amount: 1 }))
    assert.strictEqual(deposit.status, 200, `a deposit after ${after}: ${deposit.text}`)
  })

/** Sends each case and checks its status: the expected one, and in any case a 4xx. */
const expectAll = (
  url: string,
  cases: ReadonlyArray<readonly [name: string, request: Parameters<typeof send>[1], status: number]>
) =>
  Effect.forEach(
    cases,
    ([name, request, status]) =>
      Effect.gen(function* () {
        const answer = yield* send(url, request)
        assert.strictEqual(answer.status, status, `${name}: ${answer.status} ${answer.text.slice(0, 300)}`)
        assert.isTrue(answer.status >= 400 && answer.status < 500, name)
        yield* stillServes(url, name)
      }),
    { discard: true }
  )

const MAX_SAFE = Number.MAX_SAFE_INTEGER

/** Hostile input every backend must refuse the same way. */
const hostile: ReadonlyArray<readonly [string, Parameters<typeof send>[1], number]> = [
  // owners
  ["owner over 100 characters", post("/accounts/o1/open", { owner: "x".repeat(101) }), 400],
  ["owner with NUL", post("/accounts/o2/open", '{"owner":"A\\u0000b"}'), 400],
  ["owner with a lone surrogate", post("/accounts/o3/open", '{"owner":"A\\ud800b"}'), 400],
  ["owner of spaces", post("/accounts/o4/open", { owner: "   " }), 400],
  ["owner a number", post("/accounts/o5/open", { owner: 5 }), 400],
  ["owner an array", post("/accounts/o6/open", { owner: ["Ada"] }), 400],
  ["unknown field", post("/accounts/o7/open", { owner: "Ada", admin: true }), 400],
  ["unknown field on a deposit", post("/accounts/steady/deposit", { amount: 1, currency: "EUR" }), 400],
  // the account is named by the path only
  ["an account id in the body", post("/accounts/steady/deposit", { accountId: "other", amount: 1 }), 400],
  // amounts
  ["amount 1e309 (Infinity)", post("/accounts/steady/deposit", '{"amount":1e309}'), 400],
  ["amount -1e309", post("/accounts/steady/deposit", '{"amount":-1e309}'), 400],
  ["amount above the largest balance", post("/accounts/steady/deposit", { amount: MAX_SAFE + 1 }), 400],
  ["amount of 30 digits", post("/accounts/steady/deposit", '{"amount":123456789012345678901234567890}'), 400],
  ["amount NaN (not JSON)", post("/accounts/steady/deposit", '{"amount":NaN}'), 400],
  ["amount Infinity (not JSON)", post("/accounts/steady/deposit", '{"amount":Infinity}'), 400],
  ["amount 0", post("/accounts/steady/deposit", { amount: 0 }), 400],
  ["amount -0", post("/accounts/steady/deposit", '{"amount":-0}'), 400],
  ["amount negative", post("/accounts/steady/withdraw", { amount: -5 }), 400],
  ["amount 1e-400 (0)", post("/accounts/steady/deposit", '{"amount":1e-400}'), 400],
  ['amount "NaN"', post("/accounts/steady/deposit", { amount: "NaN" }), 400],
  ['amount "1"', post("/accounts/steady/deposit", { amount: "1" }), 400],
  ["amount null", post("/accounts/steady/deposit", { amount: null }), 400],
  ["amount an array", post("/accounts/steady/deposit", { amount: [1] }), 400],
  ["amount an object", post("/accounts/steady/deposit", { amount: { value: 1 } }), 400],
  ["amount missing", post("/accounts/steady/deposit", {}), 400],
  ["transfer of 1e309", post("/transfers", '{"from":"steady","to":"other","amount":1e309}'), 400],
  ["transfer from a bad id", post("/transfers", { from: "a b", to: "other", amount: 1 }), 400],
  // bodies
  ["invalid JSON", post("/accounts/b0/open", '{"owner":'), 400],
  ["empty body", post("/accounts/b0/open", ""), 400],
  ["JSON null", post("/accounts/b0/open", "null"), 400],
  ["an array where an object is expected", post("/accounts/b1/open", [{ owner: "Ada" }]), 400],
  ["a string where an object is expected", post("/accounts/b0/open", '"Ada"'), 400],
  ["text/plain", post("/accounts/b2/open", { owner: "Ada" }, { "content-type": "text/plain" }), 400],
  // a form is another encoding of the same fields (the platform decodes it); its values are strings
  [
    "form with a string amount",
    post("/accounts/steady/deposit", "amount=1", { "content-type": "application/x-www-form-urlencoded" }),
    400
  ],
  [
    "multipart without the field",
    post("/accounts/steady/deposit", "--x--", { "content-type": "multipart/form-data; boundary=x" }),
    400
  ],
  ["octet-stream", post("/accounts/b3/open", "\u0000\u0001", { "content-type": "application/octet-stream" }), 400],
  ["body nested 100,000 levels deep", post("/accounts/d1/open", `{"owner":${nested(100_000)}}`), 413],
  ["body nested 20,000 levels deep", post("/accounts/d2/open", `{"owner":${nested(20_000)}}`), 400],
  ["top-level nesting", post("/accounts/steady/deposit", nested(30_000)), 400],
  ["nesting just past the limit", post("/accounts/steady/deposit", nested(maxJsonDepth + 1)), 400],
  ["a body over the limit", post("/accounts/big/open", { owner: "x".repeat(2_000_000) }), 413],
  // routes and ids
  ["unknown route", { path: "/nope" }, 404],
  ["unknown method", { method: "DELETE", path: "/accounts/steady" }, 404],
  ["account id with NUL", post("/accounts/a%00b/deposit", { amount: 1 }), 400],
  ["account id an emoji", { path: "/accounts/%F0%9F%98%80" }, 400],
  ["account id badly escaped", { path: "/accounts/%ZZ" }, 404],
  ["account that does not exist", post("/accounts/nobody/deposit", { amount: 1 }), 409],
  ["account opened twice", post("/accounts/steady/open", { owner: "Ada" }), 409],
  ["account id too long", post(`/accounts/${"a".repeat(65)}/open`, { owner: "Ada" }), 400],
  ["closing an account with money on it", { method: "POST", path: "/accounts/steady/close" }, 409],
  ["closing with a field (close takes none)", post("/accounts/steady/close", { force: true }), 400],
  ["a command without its account id", post("/accounts/deposit", { amount: 1 }), 404],
  // the Idempotency-Key header is the command's id: the store takes short printable ones only
  [
    "an idempotency key of 10,000 characters",
    post("/accounts/steady/deposit", { amount: 1 }, { ...json, "idempotency-key": "k".repeat(10_000) }),
    400
  ],
  [
    "an empty idempotency key",
    post("/accounts/steady/deposit", { amount: 1 }, { ...json, "idempotency-key": "" }),
    400
  ],
  // queries: derived GET endpoints, URL parameters and the read-after header decoded by their Schemas
  ["an unknown account", { path: "/accounts/nobody" }, 404],
  ["a URL parameter a query does not take", { path: "/accounts/steady?admin=1" }, 400],
  ["a read-after that is not JSON", { path: "/accounts/steady", headers: { "read-after": "{" } }, 400],
  [
    "a read-after without a version",
    { path: "/accounts/steady", headers: { "read-after": '{"streamId":"Account-steady"}' } },
    400
  ],
  [
    "a read-after naming an unknown projection",
    {
      path: "/accounts/steady",
      headers: { "read-after": '{"streamId":"Account-steady","version":1,"projections":["nope"]}' }
    },
    400
  ],
  [
    "a read-after with a NUL stream id",
    { path: "/accounts/steady", headers: { "read-after": '{"streamId":"a\\u0000b","version":1}' } },
    400
  ],
  ["stream id with NUL", { path: "/streams/%00" }, 400],
  ["saga id with NUL", { path: "/sagas/transfer/%00" }, 400],
  ["category NUL", { path: "/events?category=%00" }, 400],
  ["type NUL", { path: "/events?type=%00" }, 400],
  ["limit 1e309", { path: "/events?limit=1e309" }, 400],
  ["a forged cursor", { path: "/events?after=zzz" }, 400],
  ["transfer id not a UUID", { method: "POST", path: "/transfers/x%00/confirm" }, 400]
]

describe("examples/bank HTTP API under hostile input", () => {
  it("the depth of JSON text is counted without recursion, strings aside", () => {
    assert.strictEqual(jsonDepth('{"a":[1,{"b":"[[[["}]}', 10), 3)
    assert.strictEqual(jsonDepth('"\\"[["', 10), 0)
    assert.strictEqual(jsonDepth(nested(1_000_000), 32), 33)
  })

  it.scopedLive(
    "on SQLite: every bad request is a 4xx, and the application keeps serving",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const url = yield* serve({ BANK_DB: path.join(dir, "bank.db") })
        assert.strictEqual((yield* send(url, post("/accounts/steady/open", { owner: "Ada" }))).status, 201)
        yield* stillServes(url, "opening")
        yield* expectAll(url, hostile)

        // a balance that would overflow is a domain refusal, and the balance stays exact
        assert.strictEqual((yield* send(url, post("/accounts/rich/open", { owner: "Croesus" }))).status, 201)
        assert.strictEqual((yield* send(url, post("/accounts/rich/deposit", { amount: MAX_SAFE }))).status, 200)
        const over = yield* send(url, post("/accounts/rich/deposit", { amount: 1 }))
        assert.strictEqual(over.status, 409, over.text)
        assert.strictEqual(JSON.parse(over.text)._tag, "BalanceLimitExceeded")
        yield* stillServes(url, "an overflowing deposit")
      }),
    120_000
  )

  it.scopedLive(
    "on PostgreSQL: names with NUL are 4xx (the store would refuse them), and the application keeps serving",
    () =>
      Effect.gen(function* () {
        const databaseUrl = yield* freshPgDatabase("bank_http")
        const url = yield* serve({ DATABASE_URL: databaseUrl })
        assert.strictEqual((yield* send(url, post("/accounts/steady/open", { owner: "Ada" }))).status, 201)
        yield* stillServes(url, "opening")
        yield* expectAll(url, [
          ["category NUL", { path: "/events?category=%00" }, 400],
          ["one category of two NUL", { path: "/events?category=Account&category=a%00b" }, 400],
          ["type NUL", { path: "/events?type=%00" }, 400],
          ["saga id with NUL", { path: "/sagas/transfer/%00" }, 400],
          ["owner with NUL", post("/accounts/p1/open", '{"owner":"A\\u0000b"}'), 400],
          ["amount 1e309", post("/accounts/steady/deposit", '{"amount":1e309}'), 400]
        ])
      }),
    120_000
  )
})
