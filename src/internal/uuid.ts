/**
 * UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Time-ordered ids keep
 * B-tree indexes on event ids append-mostly.
 *
 * The time comes from `Clock` (so `TestClock` controls it); the random bits come from the operating
 * system's CSPRNG, not from Effect's seedable `Random`: ids must be unique across processes, and a
 * pseudo-random generator's seed is no such guarantee. Bytes are drawn in blocks to keep this cheap on
 * hot paths (an append of many events needs an id each).
 *
 * @internal
 */
import { createHash, randomFillSync } from "node:crypto"
import * as Effect from "effect/Effect"

/** Canonical lower-case form of any RFC 9562 UUID. */
export const pattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const pool = new Uint8Array(16 * 256)
let offset = pool.length

const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

/** A UUIDv7 for a millisecond timestamp, with 10 random bytes taken from the pool. */
export const fromMillis = (millis: number): string => {
  if (offset + 10 > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const r = pool
  const o = offset
  offset += 10
  const time = Math.floor(millis % 2 ** 48)
    .toString(16)
    .padStart(12, "0")
  return (
    time.slice(0, 8) +
    "-" +
    time.slice(8, 12) +
    "-" +
    hex[0x70 | (r[o]! & 0x0f)]! +
    hex[r[o + 1]!]! +
    "-" +
    hex[0x80 | (r[o + 2]! & 0x3f)]! +
    hex[r[o + 3]!]! +
    "-" +
    hex[r[o + 4]!]! +
    hex[r[o + 5]!]! +
    hex[r[o + 6]!]! +
    hex[r[o + 7]!]! +
    hex[r[o + 8]!]! +
    hex[r[o + 9]!]!
  )
}

/** A new UUIDv7. */
export const v7: Effect.Effect<string> = Effect.clockWith((clock) =>
  Effect.sync(() => fromMillis(clock.unsafeCurrentTimeMillis()))
)

/**
 * A name-based UUID (version 8, RFC 9562's custom layout) from the SHA-256 of `name`: the same name
 * always gives the same id. Used for ids that must be reproducible, such as the events of a command.
 */
export const fromName = (name: string): string => {
  const h = createHash("sha256").update(name, "utf8").digest()
  const b = (i: number) => hex[h[i]!]!
  return (
    b(0) +
    b(1) +
    b(2) +
    b(3) +
    "-" +
    b(4) +
    b(5) +
    "-" +
    hex[0x80 | (h[6]! & 0x0f)]! +
    b(7) +
    "-" +
    hex[0x80 | (h[8]! & 0x3f)]! +
    b(9) +
    "-" +
    b(10) +
    b(11) +
    b(12) +
    b(13) +
    b(14) +
    b(15)
  )
}
