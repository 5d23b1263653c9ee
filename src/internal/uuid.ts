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
import { randomFillSync } from "node:crypto"
import * as Clock from "effect/Clock"
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
export const v7: Effect.Effect<string> = Effect.map(Clock.currentTimeMillis, fromMillis)
