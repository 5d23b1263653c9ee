/**
 * The public test kit: specifications of deciders and projections (and, later, sagas) that run without
 * infrastructure. Import from `effect-eventsourcing/testing`.
 */
export * as DeciderSpec from "./DeciderSpec.js"
export * as ProjectionSpec from "./ProjectionSpec.js"
