/**
 * UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Time-ordered ids keep
 * B-tree indexes on event ids append-mostly.
 *
 * The time comes from `Clock` (so `TestClock` controls it); the random bits come from the operating
 * system's CSPRNG, not from Effect's seedable `Random`: ids must be unique across processes, and a
 * pseudo-random generator's seed is no such guarantee. Bytes are drawn in blocks, and the id is written
 * as character codes into one flat string: joining it from a dozen pieces (as `crypto.randomUUID` does
 * too) leaves a rope that costs several times the whole generation to flatten on first use. Appends of
 * many events need an id each, so this is on a hot path.
 *
 * @internal
 */
import { createHash, randomFillSync } from "node:crypto"
import * as Effect from "effect/Effect"

/** Canonical lower-case form of any RFC 9562 UUID. */
export const pattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const pool = new Uint8Array(16 * 256)
let offset = pool.length

/** Character codes of the hex digits 0-9a-f. */
const digit = Array.from("0123456789abcdef", (c) => c.charCodeAt(0))

/** The id being written, as character codes; the hyphens stay in place. */
const codes = Array.from("00000000-0000-0000-0000-000000000000", (c) => c.charCodeAt(0))

/** 16 bytes in the canonical form, written as one flat string. */
const format = (bytes: ArrayLike<number>): string => {
  let at = 0
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) at++ // a hyphen
    const byte = bytes[i]!
    codes[at++] = digit[byte >> 4]!
    codes[at++] = digit[byte & 0x0f]!
  }
  return String.fromCharCode.apply(null, codes)
}

const bytes = new Uint8Array(16)

/** A UUIDv7 for a millisecond timestamp, with 10 random bytes taken from the pool. */
export const fromMillis = (millis: number): string => {
  if (offset + 10 > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const time = Math.floor(millis % 2 ** 48)
  const high = Math.floor(time / 2 ** 32) // 16 bits
  const low = time >>> 0 // 32 bits
  bytes[0] = high >> 8
  bytes[1] = high
  bytes[2] = low >>> 24
  bytes[3] = low >> 16
  bytes[4] = low >> 8
  bytes[5] = low
  for (let i = 0; i < 10; i++) bytes[6 + i] = pool[offset + i]!
  offset += 10
  bytes[6] = 0x70 | (bytes[6]! & 0x0f) // version 7
  bytes[8] = 0x80 | (bytes[8]! & 0x3f) // variant 10
  return format(bytes)
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
  h[6] = 0x80 | (h[6]! & 0x0f) // version 8
  h[8] = 0x80 | (h[8]! & 0x3f) // variant 10
  return format(h)
}
