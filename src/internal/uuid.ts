/**
 * UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Time-ordered ids keep
 * B-tree indexes on event ids append-mostly. Time and randomness come from `Clock` and `Random`, so
 * tests with `TestClock` and a seeded `Random` get reproducible ids.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"

/** Canonical lower-case form of any RFC 9562 UUID. */
export const pattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const hex = (n: number, digits: number): string => n.toString(16).padStart(digits, "0")

/** A new UUIDv7. */
export const v7: Effect.Effect<string> = Effect.gen(function* () {
  const millis = yield* Clock.currentTimeMillis
  const randA = yield* Random.nextIntBetween(0, 0x1000) // 12 bits
  const randB = yield* Random.nextIntBetween(0, 0x4000) // 14 bits (variant takes 2)
  const randC = yield* Random.nextIntBetween(0, 0x1000000) // 24 bits
  const randD = yield* Random.nextIntBetween(0, 0x1000000) // 24 bits
  const time = hex(millis % 2 ** 48, 12)
  return [
    time.slice(0, 8),
    time.slice(8, 12),
    hex(0x7000 | randA, 4),
    hex(0x8000 | randB, 4),
    hex(randC, 6) + hex(randD, 6)
  ].join("-")
})
