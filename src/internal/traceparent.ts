/**
 * W3C trace context (`traceparent`, https://www.w3.org/TR/trace-context/) in event metadata: written by
 * `Aggregate` from the span handling the command, read back by the asynchronous consequences of the
 * append (projection batches, saga reactions) as span links, since they run in traces of their own.
 */
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type * as Event from "../Event.js"

/** Most links a span gets from the events it handles (OpenTelemetry's default span link limit). */
export const maxLinks = 128

/** The `traceparent` of a span. */
export const format = (span: Tracer.AnySpan): string =>
  `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`

const pattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

/**
 * The span a `traceparent` names, or none when the value is not one: not a string, not lowercase hex of
 * the right lengths, version `ff`, an all-zero trace or span id, or a version 00 value with extra fields.
 */
export const parse = (value: unknown): Option.Option<Tracer.ExternalSpan> => {
  if (typeof value !== "string" || value.length > 512) return Option.none()
  const match = pattern.exec(value)
  if (match === null) return Option.none()
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?
  ]
  if (version === "ff" || (version === "00" && rest !== undefined)) return Option.none()
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return Option.none()
  return Option.some(Tracer.externalSpan({ traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 }))
}

/**
 * Links to the spans named by the events' `traceparent` metadata: one per distinct span, in event order,
 * at most {@link maxLinks}; malformed values are ignored.
 */
export const linksOf = (events: ReadonlyArray<Event.RecordedEvent>): ReadonlyArray<Tracer.SpanLink> => {
  const links: Array<Tracer.SpanLink> = []
  const seen = new Set<string>()
  for (const event of events) {
    if (links.length >= maxLinks) break
    const span = parse(event.metadata.traceparent)
    if (Option.isNone(span)) continue
    const key = `${span.value.traceId}-${span.value.spanId}`
    if (seen.has(key)) continue
    seen.add(key)
    links.push({
      _tag: "SpanLink",
      span: span.value,
      attributes: { "event.id": event.eventId, "event.stream_id": event.streamId }
    })
  }
  return links
}
