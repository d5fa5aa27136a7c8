/**
 * The encryption of private posts (docs/private-posts.md): AES-256-GCM with WebCrypto
 * (`globalThis.crypto.subtle`), the same API in Node and in browsers — nothing here imports
 * `node:*`. Every sealed object (a post's body, each attachment) is
 *
 *   version (1 byte, 0x01) ‖ IV (12 random bytes) ‖ ciphertext ‖ GCM tag (16 bytes)
 *
 * under the post's content key (32 random bytes), with a fresh random IV per object (a
 * 96-bit random IV per object keeps the GCM collision bound far out of reach: a post has at
 * most 257 objects). The additional data is "pharos/private-<body|file>/1", so a file cannot
 * be passed off as a body or the other way round.
 */
import { ContentDecryptionError } from './errors.ts'

export const SEALED_VERSION = 1
export const CONTENT_KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16
/** Bytes a sealed object adds to its plaintext: version, IV and tag. */
export const SEALED_OVERHEAD = 1 + IV_BYTES + TAG_BYTES

export type SealedKind = 'body' | 'file'

const additionalData = (kind: SealedKind): Uint8Array => new TextEncoder().encode(`pharos/private-${kind}/${SEALED_VERSION}`)

/** A fresh random AES-256 content key. */
export function newContentKey (): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(CONTENT_KEY_BYTES))
}

async function importKey (key: Uint8Array, usage: 'encrypt' | 'decrypt'): ReturnType<typeof globalThis.crypto.subtle.importKey> {
  if (key.length !== CONTENT_KEY_BYTES) throw new RangeError(`an AES-256 content key is ${CONTENT_KEY_BYTES} bytes, not ${key.length}`)
  return await globalThis.crypto.subtle.importKey('raw', key, { name: 'AES-GCM' }, false, [usage])
}

/** Encrypts `plaintext` under `key` with a fresh random IV. */
export async function seal (key: Uint8Array, plaintext: Uint8Array, kind: SealedKind): Promise<Uint8Array> {
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES))
  const ciphertext = new Uint8Array(await globalThis.crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: additionalData(kind), tagLength: TAG_BYTES * 8 }, await importKey(key, 'encrypt'), plaintext))
  const sealed = new Uint8Array(1 + IV_BYTES + ciphertext.length)
  sealed[0] = SEALED_VERSION
  sealed.set(iv, 1)
  sealed.set(ciphertext, 1 + IV_BYTES)
  return sealed
}

/** Decrypts a sealed object; ContentDecryptionError (naming `what`) if it is not one, or was altered. */
export async function open (key: Uint8Array, sealed: Uint8Array, kind: SealedKind, what: string): Promise<Uint8Array> {
  if (sealed.length < SEALED_OVERHEAD) throw new ContentDecryptionError(what, `a sealed ${kind} is at least ${SEALED_OVERHEAD} bytes, not ${sealed.length}`)
  if (sealed[0] !== SEALED_VERSION) throw new ContentDecryptionError(what, `sealed with format version ${sealed[0]}, this peer reads ${SEALED_VERSION}`)
  const iv = sealed.subarray(1, 1 + IV_BYTES)
  try {
    return new Uint8Array(await globalThis.crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: additionalData(kind), tagLength: TAG_BYTES * 8 }, await importKey(key, 'decrypt'), sealed.subarray(1 + IV_BYTES)))
  } catch (err) {
    throw new ContentDecryptionError(what, `the ${kind} does not decrypt under the post's key (altered, or sealed with another key)`, { cause: err })
  }
}
