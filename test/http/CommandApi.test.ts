/**
 * CommandApi: a command bus group served over HTTP, in process on a free port. The typed client gets the
 * commands' own success and domain errors (and a wrong field does not compile); each failure has its
 * status (domain 409 or its annotation, client input 400/403, transient 503, permanent 500, never a 5xx
 * for bad input); the OpenAPI document lists every command's path, body and error statuses.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import type * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as OpenApi from "@effect/platform/OpenApi"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, expectTypeOf, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as ParseResult from "effect/ParseResult"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as BankCommands from "../../examples/commandApi.js"
import * as CommandBus from "../../src/CommandBus.js"
import * as CommandMiddleware from "../../src/CommandMiddleware.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as CommandApi from "../../src/http/CommandApi.js"
import * as EventBrowserApi from "../../src/http/EventBrowserApi.js"

// ---------------------------------------------------------------------------------------------------
// a small domain: counters
// ---------------------------------------------------------------------------------------------------

class NotRegistered extends Schema.TaggedError<NotRegistered>()("NotRegistered", { counterId: Schema.String }) {}

/** A domain error with a status of its own. */
class LimitReached extends Schema.TaggedError<LimitReached>()(
  "LimitReached",
  { limit: Schema.Number },
  HttpApiSchema.annotations({ status: 422 })
) {}

/** True when A and B are the same type. */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false

const CounterId = Schema.String.pipe(Schema.pattern(/^[a-z0-9]{1,20}$/))
const limit = 10

class Register extends Schema.TaggedRequest<Register>()("Register", {
  failure: Schema.Never,
  success: Schema.Struct({ registered: Schema.String }),
  payload: { counterId: CounterId, label: Schema.NonEmptyTrimmedString, note: Schema.optional(Schema.String) }
}) {}

class Increment extends Schema.TaggedRequest<Increment>()("Increment", {
  failure: Schema.Union(NotRegistered, LimitReached),
  success: Schema.Struct({ value: Schema.Number }),
  payload: { counterId: CounterId, by: Schema.Int.pipe(Schema.positive()) }
}) {}

class Reset extends Schema.TaggedRequest<Reset>()("Reset", {
  failure: NotRegistered,
  success: Schema.Void,
  payload: { counterId: CounterId }
}) {}

/** Needs the `admin` role (see the bus's authorization middleware). */
class Purge extends Schema.TaggedRequest<Purge>()("Purge", {
  failure: Schema.Never,
  success: Schema.Void,
  payload: { counterId: CounterId }
}) {}

/** Answers the command id it was dispatched with. */
class Stamp extends Schema.TaggedRequest<Stamp>()("Stamp", {
  failure: Schema.Never,
  success: Schema.Struct({ commandId: Schema.String }),
  payload: { counterId: CounterId }
}) {}

/** Fails as asked, the way infrastructure and bugs fail. */
class Misbehave extends Schema.TaggedRequest<Misbehave>()("Misbehave", {
  failure: Schema.Never,
  success: Schema.Void,
  payload: {
    counterId: CounterId,
    how: Schema.Literal("transient", "permanent", "refusedAppend", "defect", "hang")
  }
}) {}

const Counters = CommandBus.group(Register, Increment, Reset, Purge, Stamp, Misbehave)

const handlers = Effect.map(Ref.make(new Map<string, number>()), (values) =>
  Counters.toLayer({
    Register: (c) =>
      Effect.as(
        Ref.update(values, (m) => new Map(m).set(c.counterId, 0)),
        { registered: c.label }
      ),
    Increment: (c) =>
      Effect.gen(function* () {
        const current = (yield* Ref.get(values)).get(c.counterId)
        if (current === undefined) return yield* new NotRegistered({ counterId: c.counterId })
        if (current + c.by > limit) return yield* new LimitReached({ limit })
        yield* Ref.update(values, (m) => new Map(m).set(c.counterId, current + c.by))
        return { value: current + c.by }
      }),
    Reset: (c) =>
      Effect.flatMap(Ref.get(values), (m) =>
        m.has(c.counterId)
          ? Ref.update(values, (n) => new Map(n).set(c.counterId, 0))
          : Effect.fail(new NotRegistered({ counterId: c.counterId }))
      ),
    Purge: () => Effect.void,
    Stamp: () => Effect.map(Event.CommandContext, (context) => ({ commandId: context.commandId ?? "" })),
    Misbehave: (c) => {
      switch (c.how) {
        case "transient":
          return Effect.fail(new EventStore.EventStoreError({ operation: "append", cause: "connection lost" }))
        case "permanent":
          return Effect.fail(
            new EventStore.EventStoreError({ operation: "append", cause: "refused", transient: false })
          )
        case "refusedAppend":
          return Effect.fail(
            new EventStore.InvalidAppend({ streamId: `Counter-${c.counterId}`, reason: "EventTooLarge", detail: "big" })
          )
        case "defect":
          return Effect.die(new Error("a bug"))
        case "hang":
          return Effect.never
      }
    }
  })
).pipe(Layer.unwrapEffect)

const Bus = CommandBus.layer({
  groups: [Counters],
  middleware: [
    CommandMiddleware.recoverDefects,
    CommandMiddleware.timeout("200 millis"),
    CommandMiddleware.authorization({ rules: { Purge: ["admin"] } })
  ],
  retry: Schedule.recurs(1)
}).pipe(Layer.provide(handlers))

// ---------------------------------------------------------------------------------------------------
// the API
// ---------------------------------------------------------------------------------------------------

const CountersApi = CommandApi.group("counters", Counters, {
  idField: "counterId",
  path: "/counters",
  endpoints: { Register: { path: "", status: 201 } }
})

class Api extends HttpApi.make("test").add(CountersApi) {}

const served = HttpApiBuilder.serve().pipe(
  Layer.provide(HttpApiBuilder.api(Api)),
  Layer.provide(CommandApi.layer(Api, "counters")),
  Layer.provide(Bus),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

/** One raw request: its status and JSON body (or text). */
const send = (path: string, body?: string, headers: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const request = HttpClientRequest.post(path).pipe(
      HttpClientRequest.setHeaders(headers),
      body === undefined ? (r) => r : HttpClientRequest.bodyText(body, "application/json")
    )
    const response = yield* client.execute(request)
    const text = yield* response.text
    return { status: response.status, text }
  }).pipe(Effect.scoped, Effect.orDie)

// live services: the timeout middleware runs on the real clock
layer(served, { excludeTestServices: true })("CommandApi", (it) => {
  it.effect("the typed client: the commands' success and domain errors, typed", () =>
    Effect.gen(function* () {
      const client = yield* HttpApiClient.make(Api)
      const registered = yield* client.counters.register({ path: { counterId: "c1" }, payload: { label: "first" } })
      assert.deepStrictEqual(registered, { registered: "first" })
      const incremented = yield* client.counters.increment({ path: { counterId: "c1" }, payload: { by: 4 } })
      assert.strictEqual(incremented.value, 4)

      const overLimit = client.counters.increment({ path: { counterId: "c1" }, payload: { by: 7 } })
      const over = yield* Effect.flip(overLimit)
      assert.strictEqual(over._tag, "LimitReached")
      assert.strictEqual(over._tag === "LimitReached" ? over.limit : 0, limit)
      assert.instanceOf(over, LimitReached)
      const unknown = yield* Effect.flip(
        client.counters.increment({ path: { counterId: "nobody" }, payload: { by: 1 } })
      )
      assert.instanceOf(unknown, NotRegistered)

      // a command without other fields takes no body
      yield* client.counters.reset({ path: { counterId: "c1" } })
      assert.strictEqual((yield* client.counters.increment({ path: { counterId: "c1" }, payload: { by: 1 } })).value, 1)

      // the bus's errors are typed too
      const forbidden = yield* Effect.flip(client.counters.purge({ path: { counterId: "c1" } }))
      assert.instanceOf(forbidden, CommandBus.Unauthorized)
      const unavailable = yield* Effect.flip(
        client.counters.misbehave({ path: { counterId: "c1" }, payload: { how: "transient" } })
      )
      assert.instanceOf(unavailable, CommandBus.CommandUnavailable)

      // types: what each endpoint takes and answers is its command's
      expectTypeOf(incremented).toEqualTypeOf<{ readonly value: number }>()
      type Failure = Effect.Effect.Error<typeof overLimit>
      type DomainErrors = Exclude<
        Failure,
        | CommandBus.CommandBusError
        | HttpApiError.HttpApiDecodeError
        | HttpClientError.HttpClientError
        | ParseResult.ParseError
      >
      expectTypeOf<Equals<DomainErrors, NotRegistered | LimitReached>>().toEqualTypeOf<true>()
      expectTypeOf<
        Equals<Extract<Failure, CommandBus.CommandBusError>, CommandBus.CommandBusError>
      >().toEqualTypeOf<true>()
      expectTypeOf(client.counters.register).parameter(0).toEqualTypeOf<{
        readonly path: { readonly counterId: string }
        readonly payload: { readonly label: string; readonly note?: string }
        readonly withResponse?: boolean
      }>()
      // never run: each call must fail to compile
      void (() => [
        // @ts-expect-error a field the command does not have
        client.counters.increment({ path: { counterId: "c1" }, payload: { amount: 1 } }),
        // @ts-expect-error a field of the wrong type
        client.counters.increment({ path: { counterId: "c1" }, payload: { by: "1" } }),
        // @ts-expect-error the id goes in the path, not in the body
        client.counters.increment({ path: { counterId: "c1" }, payload: { by: 1, counterId: "c1" } }),
        // @ts-expect-error a command without other fields takes no body
        client.counters.reset({ path: { counterId: "c1" }, payload: {} }),
        // @ts-expect-error a command the group does not have
        client.counters.deposit({ path: { counterId: "c1" }, payload: { by: 1 } })
      ])
    })
  )

  it.effect("statuses: created, done, domain refusals 409 or as annotated", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* send("/counters/s1", '{"label":"s"}')).status, 201)
      const done = yield* send("/counters/s1/increment", '{"by":2}')
      assert.deepStrictEqual([done.status, JSON.parse(done.text)], [200, { value: 2 }])
      assert.strictEqual((yield* send("/counters/s1/reset")).status, 204)
      assert.strictEqual((yield* send("/counters/s1/reset", "{ }")).status, 204)
      const refused = yield* send("/counters/nobody/increment", '{"by":1}')
      assert.deepStrictEqual(
        [refused.status, JSON.parse(refused.text)],
        [409, { _tag: "NotRegistered", counterId: "nobody" }]
      )
      const limited = yield* send("/counters/s1/increment", '{"by":11}')
      assert.deepStrictEqual([limited.status, JSON.parse(limited.text)._tag], [422, "LimitReached"])
    })
  )

  it.effect("bad input is a 400, never a 5xx; unknown fields are refused", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, string, string | undefined, number]> = [
        ["unknown field", "/counters/s2/increment", '{"by":1,"extra":true}', 400],
        ["the id in the body", "/counters/s2/increment", '{"by":1,"counterId":"s3"}', 400],
        ["a field of the wrong type", "/counters/s2/increment", '{"by":"1"}', 400],
        ["a refinement", "/counters/s2/increment", '{"by":-1}', 400],
        ["a missing field", "/counters/s2/increment", "{}", 400],
        ["no body", "/counters/s2/increment", undefined, 400],
        ["a field for a command without fields", "/counters/s2/purge", '{"force":true}', 400],
        ["a body not JSON for a command without fields", "/counters/s2/purge", "force", 400],
        ["invalid JSON", "/counters/s2/increment", '{"by":', 400],
        ["a bad id", "/counters/NOT%20AN%20ID/increment", '{"by":1}', 400],
        ["a label of spaces", "/counters/s2", '{"label":"   "}', 400],
        ["an unknown literal", "/counters/s2/misbehave", '{"how":"explode"}', 400],
        ["a forbidden command", "/counters/s2/purge", undefined, 403],
        ["a command not in the group", "/counters/s2/deposit", '{"by":1}', 404]
      ]
      for (const [name, path, body, status] of cases) {
        const answer = yield* send(path, body)
        assert.strictEqual(answer.status, status, `${name}: ${answer.text}`)
      }
      // the store refusing what the command carries is the client's fault too
      const refusedAppend = yield* send("/counters/s2/misbehave", '{"how":"refusedAppend"}')
      assert.strictEqual(refusedAppend.status, 400, refusedAppend.text)
      assert.strictEqual(JSON.parse(refusedAppend.text)._tag, "CommandValidationError")
    })
  )

  it.effect("an Idempotency-Key header is the command's id; without one, each request gets a new id", () =>
    Effect.gen(function* () {
      const stamp = (headers: Record<string, string>) =>
        Effect.map(send("/counters/s5/stamp", undefined, headers), (answer) => JSON.parse(answer.text).commandId)
      assert.strictEqual(yield* stamp({ "idempotency-key": "key-1" }), "key-1")
      const fresh = [yield* stamp({}), yield* stamp({})]
      assert.notStrictEqual(fresh[0], fresh[1])
      assert.notInclude(fresh, "")
    })
  )

  it.effect("infrastructure: transient 503, permanent 500", () =>
    Effect.gen(function* () {
      const expected = [
        ["transient", 503, "CommandUnavailable"],
        ["hang", 503, "CommandTimeout"],
        ["permanent", 500, "CommandFailed"],
        ["defect", 500, "CommandDefect"]
      ] as const
      for (const [how, status, tag] of expected) {
        const answer = yield* send("/counters/s4/misbehave", JSON.stringify({ how }))
        assert.deepStrictEqual([answer.status, JSON.parse(answer.text)._tag], [status, tag], `${how}: ${answer.text}`)
      }
    })
  )
})

describe("CommandApi", () => {
  it.live("a command retried with its Idempotency-Key is applied once; the key is refused for another account", () =>
    Effect.gen(function* () {
      const client = yield* HttpApiClient.make(BankCommands.Api, {
        transformClient: HttpClient.mapRequest(HttpClientRequest.setHeader("idempotency-key", "deposit-1"))
      })
      const plain = yield* HttpApiClient.make(BankCommands.Api)
      yield* plain.accounts.openAccount({ path: { accountId: "ada" }, payload: { owner: "Ada" } })
      yield* plain.accounts.openAccount({ path: { accountId: "bob" }, payload: { owner: "Bob" } })
      const first = yield* client.accounts.deposit({ path: { accountId: "ada" }, payload: { amount: 10 } })
      const retried = yield* client.accounts.deposit({ path: { accountId: "ada" }, payload: { amount: 10 } })
      assert.strictEqual(retried.version, first.version)
      // one deposit of 10 only: withdrawing 11 is refused, with the balance
      const refused = yield* Effect.flip(
        plain.accounts.withdraw({ path: { accountId: "ada" }, payload: { amount: 11 } })
      )
      assert.deepStrictEqual(refused._tag === "InsufficientFunds" ? refused.balance : refused._tag, 10)
      const reused = yield* Effect.flip(
        client.accounts.deposit({ path: { accountId: "bob" }, payload: { amount: 10 } })
      )
      assert.strictEqual(reused._tag, "CommandValidationError")
    }).pipe(Effect.provide(BankCommands.ApiLive.pipe(Layer.provideMerge(NodeHttpServer.layerTest))))
  )

  it("the OpenAPI document lists each command's path, body and error statuses", () => {
    const spec = OpenApi.fromApi(Api)
    assert.deepStrictEqual(Object.keys(spec.paths).sort(), [
      "/counters/{counterId}",
      "/counters/{counterId}/increment",
      "/counters/{counterId}/misbehave",
      "/counters/{counterId}/purge",
      "/counters/{counterId}/reset",
      "/counters/{counterId}/stamp"
    ])
    const increment = spec.paths["/counters/{counterId}/increment"]!.post!
    assert.deepStrictEqual(
      increment.parameters.map((p) => [p.name, p.in, p.required]),
      [["counterId", "path", true]]
    )
    const body = increment.requestBody!.content["application/json"]!.schema as {
      readonly properties: Record<string, unknown>
      readonly required: ReadonlyArray<string>
      readonly additionalProperties: unknown
    }
    assert.deepStrictEqual(Object.keys(body.properties), ["by"])
    assert.deepStrictEqual(body.required, ["by"])
    assert.deepStrictEqual(Object.keys(increment.responses).sort(), ["200", "400", "403", "409", "422", "500", "503"])
    const register = spec.paths["/counters/{counterId}"]!.post!
    assert.deepStrictEqual(Object.keys(register.responses).sort(), ["201", "400", "403", "500", "503"])
    const registerBody = register.requestBody!.content["application/json"]!.schema as {
      readonly required: ReadonlyArray<string>
    }
    assert.deepStrictEqual(registerBody.required, ["label"])
    // a command without other fields takes no body
    assert.isUndefined(spec.paths["/counters/{counterId}/reset"]!.post!.requestBody)
    assert.deepStrictEqual(Object.keys(spec.paths["/counters/{counterId}/reset"]!.post!.responses).sort(), [
      "204",
      "400",
      "403",
      "409",
      "500",
      "503"
    ])
  })

  it("beside the event browser, the bus's Unauthorized keeps a schema of its own", () => {
    const spec = OpenApi.fromApi(EventBrowserApi.Api.add(CountersApi))
    const forbidden = spec.paths["/counters/{counterId}/purge"]!.post!.responses["403"]!
    assert.deepStrictEqual(forbidden.content!["application/json"]!.schema, {
      $ref: "#/components/schemas/CommandUnauthorized"
    })
    const schema = spec.components.schemas["CommandUnauthorized"] as { readonly required: ReadonlyArray<string> }
    assert.includeMembers([...schema.required], ["commandTag", "required"])
  })

  it("a store refusing the command's data is bad input; other failures pass as they are", () => {
    const refused = CommandApi.httpFailure(
      new CommandBus.CommandFailed({ commandTag: "X", errorTag: "InvalidAppend", detail: "too big" })
    )
    assert.instanceOf(refused, CommandBus.CommandValidationError)
    const failed = new CommandBus.CommandFailed({ commandTag: "X", errorTag: "EventDecodeError", detail: "bad" })
    assert.strictEqual(CommandApi.httpFailure(failed), failed)
    const domain = new NotRegistered({ counterId: "x" })
    assert.strictEqual(CommandApi.httpFailure(domain), domain)
  })

  it.effect("the Layer refuses a bus that does not handle one of the group's commands", () =>
    Effect.gen(function* () {
      const Partial = CommandBus.group(Register)
      const partialBus = CommandBus.layer({ groups: [Partial] }).pipe(
        Layer.provide(Partial.toLayer({ Register: (c) => Effect.succeed({ registered: c.label }) }))
      )
      const exit = yield* Layer.build(CommandApi.layer(Api, "counters")).pipe(
        Effect.provide(partialBus),
        Effect.provide(HttpApiBuilder.Router.Live),
        Effect.scoped,
        Effect.exit
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(exit)
      assert.strictEqual(error._tag, "CommandBusConfigError")
      assert.include(error.message, "the bus does not handle Increment")
    })
  )
})
