import * as Layer from "effect/Layer"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { isolatedPrefix } from "../support/ids.js"
import { pgWithSchema, sqliteFile, sqliteMemory } from "../support/sql.js"
import { suite } from "../suites/EventStoreSuite.js"

suite("SqlEventStore on SQLite (memory)", SqlEventStore.layer().pipe(Layer.provide(sqliteMemory)))

suite("SqlEventStore on SQLite (file)", SqlEventStore.layer({ tablePrefix: "evt_" }).pipe(Layer.provide(sqliteFile)))

const schema = isolatedPrefix(import.meta.url)
suite("SqlEventStore on PostgreSQL", SqlEventStore.layer({ schema }).pipe(Layer.provide(pgWithSchema(schema))))
