import * as Layer from "effect/Layer"
import * as SqlSagaStore from "../../src/sql/SqlSagaStore.js"
import { isolatedPrefix } from "../support/ids.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "../support/sql.js"
import { suite } from "../suites/SagaStoreSuite.js"

suite("SqlSagaStore on SQLite (memory)", SqlSagaStore.layer().pipe(Layer.provide(sqliteMemory)))

const schema = isolatedPrefix(import.meta.url)
suite("SqlSagaStore on PostgreSQL", SqlSagaStore.layer({ schema }).pipe(Layer.provide(pgWithSchema(schema))))

suite(
  "SqlSagaStore on MariaDB",
  SqlSagaStore.layer({ tablePrefix: `${schema}_` }).pipe(Layer.provide(mysqlWithPrefix(`${schema}_`)))
)
