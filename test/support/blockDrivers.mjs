// Makes the PostgreSQL, MySQL, NATS and OpenTelemetry packages unresolvable in this process (a module
// resolution hook), as for a user who installed only what SQLite needs. Loaded with `node --import`.
import { register } from "node:module"

const hook = `
const blocked = /^(pg|pg-[a-z-]+|mysql2|@effect\\/sql-pg|@effect\\/sql-mysql2|@effect\\/opentelemetry|@nats-io\\/[a-z-]+|@opentelemetry\\/[a-z-]+)(\\/.*)?$/
export async function resolve(specifier, context, next) {
  if (blocked.test(specifier)) throw new Error("not installed: " + specifier)
  return next(specifier, context)
}`
register("data:text/javascript," + encodeURIComponent(hook))
