import { assert, describe, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Option from "effect/Option"
import type * as Event from "../../src/Event.js"
import * as Traceparent from "../../src/internal/traceparent.js"

const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
const span = "00f067aa0ba902b7"

const event = (id: string, traceparent: unknown): Event.RecordedEvent =>
  ({
    eventId: id,
    type: "Happened",
    schemaVersion: 1,
    data: {},
    metadata: { traceparent },
    streamId: "Thing-1",
    category: "Thing",
    version: 1,
    position: 1n,
    transaction: 1n,
    recordedAt: DateTime.unsafeMake(0)
  }) as unknown as Event.RecordedEvent

describe("traceparent", () => {
  it("parses W3C traceparents, sampled or not", () => {
    const sampled = Option.getOrThrow(Traceparent.parse(`00-${trace}-${span}-01`))
    assert.deepStrictEqual([sampled.traceId, sampled.spanId, sampled.sampled], [trace, span, true])
    assert.isFalse(Option.getOrThrow(Traceparent.parse(`00-${trace}-${span}-00`)).sampled)
    // a later version may carry more fields
    assert.isTrue(Option.isSome(Traceparent.parse(`01-${trace}-${span}-01-more`)))
  })

  it("refuses malformed values", () => {
    for (const bad of [
      undefined,
      42,
      "",
      `00-${trace}-${span}`,
      `00-${trace.toUpperCase()}-${span}-01`,
      `00-${trace}-${span}-01-extra`,
      `ff-${trace}-${span}-01`,
      `00-${"0".repeat(32)}-${span}-01`,
      `00-${trace}-${"0".repeat(16)}-01`,
      `00-${trace}0-${span}-01`,
      ` 00-${trace}-${span}-01`
    ]) {
      assert.isTrue(Option.isNone(Traceparent.parse(bad)), `refuses ${String(bad)}`)
    }
  })

  it("formats what it parses", () => {
    const parsed = Option.getOrThrow(Traceparent.parse(`00-${trace}-${span}-01`))
    assert.strictEqual(Traceparent.format(parsed), `00-${trace}-${span}-01`)
  })

  it("links once per span, skipping malformed values, at most maxLinks", () => {
    const other = "1111111111111111"
    const links = Traceparent.linksOf([
      event("a", `00-${trace}-${span}-01`),
      event("b", "garbage"),
      event("c", `00-${trace}-${span}-01`),
      event("d", `00-${trace}-${other}-00`),
      event("e", undefined)
    ])
    assert.deepStrictEqual(
      links.map((l) => [l.span.spanId, l.attributes["event.id"]]),
      [
        [span, "a"],
        [other, "d"]
      ]
    )
    const many = Array.from({ length: Traceparent.maxLinks + 10 }, (_, i) =>
      event(String(i), `00-${trace}-${(i + 1).toString(16).padStart(16, "0")}-01`)
    )
    assert.strictEqual(Traceparent.linksOf(many).length, Traceparent.maxLinks)
  })
})
