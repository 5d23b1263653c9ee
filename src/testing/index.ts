/**
 * The public test kit: specifications of deciders, projections and sagas that run without
 * infrastructure, and the schema lock check. Import from `effect-eventsourcing/testing`.
 */
export * as DeciderSpec from "./DeciderSpec.js"
export * as ProjectionSpec from "./ProjectionSpec.js"
export * as SagaSpec from "./SagaSpec.js"
export * as SchemaLockSpec from "./SchemaLockSpec.js"
