/**
 * AES-256-GCM for crypto-shredding (see `Personal` and `KeyStore`): personal values sealed with a subject's
 * data key, data keys wrapped with the master key. Every sealed text is base64 of a fresh 12-byte nonce,
 * the ciphertext and the 16-byte tag; the subject is the additional authenticated data, so a value or a
 * key copied to another subject does not open. Nothing here logs, and no error carries a key or a value.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"
import * as Either from "effect/Either"

/** Bytes of an AES-256 key. */
export const keyBytes = 32

const nonceBytes = 12
const tagBytes = 16

/** A fresh random key (a data key). */
export const newKey = (): Uint8Array => randomBytes(keyBytes)

/** `plaintext` sealed with `key` for `subject` (a fresh nonce each time). */
export const seal = (key: Uint8Array, subject: string, plaintext: Uint8Array): string => {
  const nonce = randomBytes(nonceBytes)
  const cipher = createCipheriv("aes-256-gcm", key, nonce)
  cipher.setAAD(Buffer.from(subject, "utf8"))
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString("base64")
}

/** The plaintext of a {@link seal}ed text, or `undefined` if it does not open with `key` for `subject`. */
export const open = (key: Uint8Array, subject: string, sealed: string): Uint8Array | undefined => {
  const bytes = Buffer.from(sealed, "base64")
  if (bytes.length < nonceBytes + tagBytes) return undefined
  const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, nonceBytes))
  decipher.setAAD(Buffer.from(subject, "utf8"))
  decipher.setAuthTag(bytes.subarray(bytes.length - tagBytes))
  const body = decipher.update(bytes.subarray(nonceBytes, bytes.length - tagBytes))
  // a wrong key or a changed text fails the tag check (node:crypto throws); what was deciphered is dropped
  const final = Either.try(() => decipher.final())
  return Either.isLeft(final) ? undefined : Buffer.concat([body, final.right])
}

/** A master key given as base64 (32 bytes), or `undefined` if it is not one. */
export const masterKeyOf = (base64: string): Uint8Array | undefined => {
  const bytes = Buffer.from(base64.trim(), "base64")
  return bytes.length === keyBytes && /^[A-Za-z0-9+/]+=*$/.test(base64.trim()) ? bytes : undefined
}
