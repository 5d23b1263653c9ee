import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Json from "../../src/internal/json.js"

const problemOf = (value: unknown) => Either.flip(Json.encode(value)).pipe(Either.getOrThrow)

describe("json", () => {
  it("encodes JSON values exactly as JSON.stringify (property)", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.jsonValue(), (value) => {
        // jsonValue may produce -0, which JSON.stringify writes as 0: both sides agree on that too
        assert.deepStrictEqual(Json.encode(value), Either.right(JSON.stringify(value)))
      })
    )
  })

  it("a cycle through nested containers is refused at the place it closes", () => {
    const outer: Record<string, unknown> = { list: [] }
    const inner = { back: outer }
    ;(outer.list as Array<unknown>).push(1, inner)
    assert.deepStrictEqual(problemOf(outer), { path: "$.list[1].back", problem: "is a circular reference" })
  })

  it("one object referenced twice, not inside itself, is no cycle", () => {
    const shared = { a: 1 }
    const value = { left: shared, right: [shared, { again: shared }] }
    assert.deepStrictEqual(Json.encode(value), Either.right(JSON.stringify(value)))
  })

  it("a getter that encodes another value while being checked does not disturb the outer check", () => {
    const inner = { x: 1 }
    const value = {
      get first() {
        // a cycle-free value checked in the middle of the outer check, then the outer check goes on
        assert.isTrue(Either.isRight(Json.encode({ inner, again: inner })))
        return inner
      },
      second: inner
    }
    assert.deepStrictEqual(Json.encode(value), Either.right('{"first":{"x":1},"second":{"x":1}}'))
    const cyclic: Record<string, unknown> = {}
    cyclic.self = {
      get nested() {
        assert.isTrue(Either.isRight(Json.encode([1, 2])))
        return cyclic
      }
    }
    assert.deepStrictEqual(problemOf(cyclic), { path: "$.self.nested", problem: "is a circular reference" })
  })
})
