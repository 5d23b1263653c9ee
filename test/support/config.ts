/**
 * Where the shared test services are: `PG_URL`, `NATS_URL`, `MYSQL_URL`, defaulting to the standard
 * loopback ports. Fault tests never use these; they start their own servers (see `servers.ts`).
 */
export const pgUrl: string = process.env.PG_URL ?? "postgres://root@127.0.0.1:5432/test"

export const natsUrl: string = process.env.NATS_URL ?? "nats://127.0.0.1:4222"

export const mysqlUrl: string = process.env.MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test"
