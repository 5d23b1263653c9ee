import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Uuid from "../../src/internal/uuid.js"

const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe("uuid", () => {
  it("fromMillis writes the 48-bit time, version 7 and the variant (property)", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.integer({ min: 0, max: 2 ** 48 - 1 }), (millis) => {
        const id = Uuid.fromMillis(millis)
        assert.match(id, v7)
        assert.strictEqual(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), millis)
      }),
      { numRuns: 2000 }
    )
  })

  it("fromMillis ids of one millisecond differ in their random bits", () => {
    const ids = Array.from({ length: 5000 }, () => Uuid.fromMillis(1_764_000_000_000))
    assert.strictEqual(new Set(ids).size, ids.length)
    assert.strictEqual(new Set(ids.map((id) => id.slice(0, 13))).size, 1)
  })

  it("fromName is the SHA-256 of the name with version 8 and the variant set (vector computed independently)", () => {
    // sha256("saga-0-x0") = c71e99b9 8c84 fc91 5ad5 d307f664ecc7...: byte 6 fc -> 8c, byte 8 5a -> 9a
    assert.strictEqual(Uuid.fromName("saga-0-x0"), "c71e99b9-8c84-8c91-9ad5-d307f664ecc7")
    assert.strictEqual(Uuid.fromName("saga-0-x0"), Uuid.fromName("saga-0-x0"))
  })
})
