/**
 * The public test kit: specifications of deciders (and, later, projections and sagas) that run without
 * infrastructure. Import from `effect-eventsourcing/testing`.
 */
export * as DeciderSpec from "./DeciderSpec.js"
