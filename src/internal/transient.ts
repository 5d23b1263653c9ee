/**
 * Whether a failure may pass if retried as is, as the failure itself says: the library's errors carry
 * `transient`, decided once where a driver or broker error entered the library (`src/sql`, `src/nats`).
 * Core modules ask this (or a store about its own database's errors), never driver codes.
 *
 * @internal
 */

/** True when the failure says it is transient (`transient: true`); false when it says otherwise or says nothing. */
export const saysTransient = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as { readonly transient?: unknown }).transient === true
