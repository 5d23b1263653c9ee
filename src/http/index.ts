/**
 * The HTTP side of the library: the event browser API (`EventBrowserApi`), commands over HTTP derived
 * from a command bus group (`CommandApi`), queries over HTTP derived from a query bus group (`QueryApi`), and the Prometheus text renderer the browser uses for
 * `/metrics` (`Prometheus`). A separate entry point so that users of the core modules do not load
 * `@effect/platform`'s HTTP stack.
 */
export * as CommandApi from "./CommandApi.js"
export * as QueryApi from "./QueryApi.js"
export * as EventBrowserApi from "./EventBrowserApi.js"
export * as Prometheus from "./prometheus.js"
