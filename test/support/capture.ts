/**
 * What a run wrote to logs and spans, as text, for tests that check what never shows there (keys, clear
 * personal values): a tracer recording every span's name and attributes, a logger recording every line.
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Tracer from "effect/Tracer"

/** The recorded texts of {@link capturing}. */
export interface Captured {
  /** Span names and `key=value` attributes, one a line. */
  readonly spans: () => string
  /** Log lines (message, annotations, cause) at every level, one a line. */
  readonly logs: () => string
}

const bigints = (_: string, value: unknown) => (typeof value === "bigint" ? String(value) : value)

/** Runs `effect` with every span and log line recorded; the records grow while it runs. */
export const capturing = <A, E, R>(f: (captured: Captured) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  const spans: Array<string> = []
  const logs: Array<string> = []
  const native = Effect.runSync(Effect.tracer)
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = native.span(name, parent, context, links, startTime, kind, options)
      spans.push(name)
      const setAttribute = span.attribute.bind(span)
      span.attribute = (key, value) => {
        spans.push(`${key}=${JSON.stringify(value, bigints)}`)
        setAttribute(key, value)
      }
      for (const [key, value] of span.attributes) {
        spans.push(`${key}=${JSON.stringify(value, bigints)}`)
      }
      return span
    },
    context: (f) => f()
  })
  const logger = Logger.make(({ annotations, cause, message }) => {
    logs.push(JSON.stringify({ message, annotations: [...annotations], cause: String(cause) }, bigints))
  })
  return f({ spans: () => spans.join("\n"), logs: () => logs.join("\n") }).pipe(
    Effect.withTracer(tracer),
    Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
    Logger.withMinimumLogLevel(LogLevel.All)
  )
}
