/**
 * The HTTP side of the library: the event browser API (`EventBrowserApi`) and the Prometheus text
 * renderer it uses for `/metrics` (`Prometheus`). A separate entry point so that users of the core
 * modules do not load `@effect/platform`'s HTTP stack.
 */
export * as EventBrowserApi from "./EventBrowserApi.js"
export * as Prometheus from "./prometheus.js"
