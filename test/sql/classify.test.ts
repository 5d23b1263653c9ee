/**
 * Whether a driver error is transient, decided where it enters the library (`src/sql/classify.ts`), and
 * what the command bus makes of an `EventStoreError` that says it is permanent.
 */
import { assert, describe, it } from "@effect/vitest"
import { SqlError } from "@effect/sql/SqlError"
import * as CommandBus from "../../src/CommandBus.js"
import { EventStoreError } from "../../src/EventStore.js"
import { isAbortedTransaction, isTransient, storeError } from "../../src/sql/classify.js"
import { CheckpointStoreError } from "../../src/CheckpointStore.js"
import { SagaStoreError } from "../../src/SagaStore.js"

const driver = (fields: Record<string, unknown>) => Object.assign(new Error("driver error"), fields)
const wrapped = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })

describe("classify", () => {
  it("a lost connection is transient, whatever the driver says about it", () => {
    assert.isTrue(isTransient(wrapped(new Error("Connection terminated unexpectedly"))))
    assert.isTrue(isTransient(wrapped(driver({ code: "57P01" }))), "PostgreSQL: terminated by an administrator")
    assert.isTrue(isTransient(wrapped(driver({ code: "PROTOCOL_CONNECTION_LOST", fatal: true }))))
    assert.isTrue(isTransient(wrapped(driver({ code: "ER_CONNECTION_KILLED", errno: 1927, sqlState: "70100" }))))
    assert.isTrue(isTransient(wrapped(driver({ code: "ECONNRESET", errno: -104 }))))
    assert.isTrue(isTransient(wrapped(driver({ code: "SQLITE_BUSY" }))))
    assert.isTrue(isTransient(wrapped(driver({ code: "ER_LOCK_DEADLOCK", errno: 1213, sqlState: "40001" }))))
    // a defect of `withTransaction` made typed again wraps the driver's error twice
    assert.isTrue(isTransient(wrapped(wrapped(driver({ code: "40P01" })))))
  })

  it("a refused statement or a backend limit is permanent", () => {
    assert.isFalse(isTransient(wrapped(driver({ code: "54000" }))), "PostgreSQL: program limit exceeded")
    assert.isFalse(isTransient(wrapped(driver({ code: "22P02" }))), "PostgreSQL: bad data")
    assert.isFalse(isTransient(wrapped(wrapped(driver({ code: "42601" })))), "PostgreSQL: syntax")
    assert.isFalse(
      isTransient(wrapped(driver({ code: "ER_NET_PACKET_TOO_LARGE", errno: 1153, sqlState: "08S01" }))),
      "MariaDB: max_allowed_packet"
    )
    assert.isFalse(isTransient(wrapped(driver({ code: "ER_PS_MANY_PARAM", errno: 1390, sqlState: "HY000" }))))
    assert.isFalse(isTransient(wrapped(driver({ code: "SQLITE_TOOBIG" }))))
    assert.isFalse(isTransient(wrapped(driver({ code: "SQLITE_ERROR" }))), "SQLite: too many SQL variables")
  })

  it("storeError says it on the EventStoreError, and the command bus does not retry a permanent one", () => {
    const permanent = storeError("append")(wrapped(driver({ code: "54000" })))
    const transient = storeError("append")(wrapped(new Error("Connection terminated unexpectedly")))
    assert.isFalse(permanent.transient)
    assert.isTrue(transient.transient)
    assert.isTrue(new EventStoreError({ operation: "append", cause: "x" }).transient, "transient by default")
    assert.isFalse(CommandBus.isTransient(permanent))
    assert.isTrue(CommandBus.isTransient(transient))
  })

  it("a statement in a transaction that already failed is permanent, and said to be an aborted transaction", () => {
    const aborted = wrapped(driver({ code: "25P02" }))
    assert.isFalse(isTransient(aborted))
    assert.isTrue(isAbortedTransaction(aborted))
    assert.isFalse(isAbortedTransaction(wrapped(driver({ code: "40P01" }))))
  })

  it("the command bus asks the error: any service's transient error is retried, a silent one is not", () => {
    assert.isTrue(CommandBus.isTransient(new SagaStoreError({ operation: "save", cause: "x" })))
    assert.isTrue(CommandBus.isTransient(new CheckpointStoreError({ operation: "commit", cause: "x" })))
    assert.isFalse(CommandBus.isTransient(new SagaStoreError({ operation: "save", cause: "x", transient: false })))
    assert.isFalse(CommandBus.isTransient(wrapped(new Error("Connection terminated unexpectedly"))), "says nothing")
    assert.isFalse(CommandBus.isTransient(new Error("boom")))
  })
})
