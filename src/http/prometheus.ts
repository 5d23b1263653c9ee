/**
 * Renders Effect's metric snapshot (`Metric.snapshot`) in the Prometheus text exposition format, version
 * 0.0.4, for the `/metrics` endpoint of `EventBrowserApi`. The mapping of Effect's metric kinds, name
 * sanitizing and the Gotchas: {@link render}.
 */
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

/** The Content-Type of the text exposition format rendered by {@link render}. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/**
 * Renders a metric snapshot as Prometheus text (one trailing newline; empty for no metrics).
 *
 * Mapping: counters are `counter`s, gauges `gauge`s, histograms `histogram`s (cumulative `_bucket{le=...}`
 * lines ending with `le="+Inf"`, then `_sum` and `_count`), summaries `summary`s (`{quantile=...}`,
 * `_sum`, `_count`), and frequencies `counter`s with one series per observed value under the label `key`.
 * Metric and label names are sanitized (characters outside `[a-zA-Z0-9_:]`, or `[a-zA-Z0-9_]` for labels,
 * become `_`; a leading digit gets a `_` prefix); label values and help texts are escaped. Series sharing
 * a name are grouped under one `# HELP` / `# TYPE` header, as the format requires.
 *
 * **Gotchas**: one name used by metrics of different kinds (a counter and a gauge both called `x`) cannot
 * be expressed in the format; the first kind seen wins the header and the other series are still printed
 * under it. This is a small self-contained renderer: an OpenTelemetry Prometheus exporter can replace it
 * through the `metrics` option of `EventBrowserApi.layer`.
 */
export const render = (snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, { type: string; help: string | undefined; lines: Array<string> }>()
  for (const pair of snapshot) {
    const key = pair.metricKey
    const name = metricName(key.name)
    const labels = key.tags.map((tag) => [labelName(tag.key), tag.value] as const)
    const state: unknown = pair.metricState
    const rendered = series(name, labels, state)
    if (rendered === undefined) continue
    const family = families.get(name) ?? {
      type: rendered.type,
      help: Option.getOrUndefined(key.description),
      lines: []
    }
    family.lines.push(...rendered.lines)
    families.set(name, family)
  }
  const out: Array<string> = []
  for (const name of [...families.keys()].sort()) {
    const family = families.get(name)!
    if (family.help !== undefined && family.help.length > 0) out.push(`# HELP ${name} ${escapeHelp(family.help)}`)
    out.push(`# TYPE ${name} ${family.type}`)
    out.push(...family.lines)
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}

type Labels = ReadonlyArray<readonly [string, string]>

const series = (
  name: string,
  labels: Labels,
  state: unknown
): { readonly type: string; readonly lines: ReadonlyArray<string> } | undefined => {
  if (MetricState.isCounterState(state)) return { type: "counter", lines: [line(name, labels, state.count)] }
  if (MetricState.isGaugeState(state)) return { type: "gauge", lines: [line(name, labels, state.value)] }
  if (MetricState.isHistogramState(state)) {
    const lines = state.buckets
      .filter(([boundary]) => boundary !== Number.POSITIVE_INFINITY)
      .map(([boundary, count]) => line(`${name}_bucket`, [...labels, ["le", number(boundary)]], count))
    lines.push(line(`${name}_bucket`, [...labels, ["le", "+Inf"]], state.count))
    lines.push(line(`${name}_sum`, labels, state.sum), line(`${name}_count`, labels, state.count))
    return { type: "histogram", lines }
  }
  if (MetricState.isSummaryState(state)) {
    const lines = state.quantiles.map(([quantile, value]) =>
      line(
        name,
        [...labels, ["quantile", number(quantile)]],
        Option.getOrElse(value, () => Number.NaN)
      )
    )
    lines.push(line(`${name}_sum`, labels, state.sum), line(`${name}_count`, labels, state.count))
    return { type: "summary", lines }
  }
  if (MetricState.isFrequencyState(state)) {
    const lines = [...state.occurrences].map(([value, count]) => line(name, [...labels, ["key", value]], count))
    return { type: "counter", lines }
  }
  return undefined
}

const line = (name: string, labels: Labels, value: number | bigint): string => {
  const rendered = labels.map(([key, v]) => `${key}="${escapeLabelValue(v)}"`).join(",")
  return `${name}${rendered.length === 0 ? "" : `{${rendered}}`} ${number(value)}`
}

const number = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

/** A valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
export const metricName = (raw: string): string => sanitize(raw, /[^a-zA-Z0-9_:]/g)

/** A valid label name: `[a-zA-Z_][a-zA-Z0-9_]*` (names starting with `__` are reserved: prefixed). */
export const labelName = (raw: string): string => {
  const name = sanitize(raw, /[^a-zA-Z0-9_]/g)
  return name.startsWith("__") ? `_${name.replace(/^_+/, "")}` : name
}

const sanitize = (raw: string, invalid: RegExp): string => {
  const name = raw.replace(invalid, "_")
  return name.length === 0 ? "_" : /^[0-9]/.test(name) ? `_${name}` : name
}

/** Escapes a label value: backslash, double quote and line feed. */
export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

const escapeHelp = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
