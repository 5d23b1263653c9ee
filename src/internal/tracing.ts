/**
 * Spans on hot paths that are left out when nothing can record them.
 *
 * Effect's built-in tracer is the one in use unless a program installs another (as `Otel`'s layers do).
 * It keeps no spans and exports nothing, yet making a span with it still costs random trace and span ids,
 * an attribute map and a context entry: measured here, about a tenth of a one-event append on PostgreSQL.
 * Under that tracer, {@link withSpanIfRecorded} runs the effect without the span; under any other tracer it
 * is `Effect.withSpan`. Only for spans whose inside reads no span of its own (no `Effect.currentSpan`, no
 * `traceparent` taken from it): there, the one difference is a span that nothing would have kept.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Tracer from "effect/Tracer"

/** The tracer of a program that installs none. */
const builtIn: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** `Effect.withSpan(name, options)`, except under Effect's built-in tracer, which would keep nothing of it. */
export const withSpanIfRecorded =
  (name: string, options: Tracer.SpanOptions) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.tracerWith((tracer) => (tracer === builtIn ? self : Effect.withSpan(self, name, options)))
