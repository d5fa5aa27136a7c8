/**
 * Content keys sealed at rest (issue 23, item 4; docs/logs.md "Keys sealed at rest").
 *
 * A beacon stores every deposited content key envelope-encrypted under a sealing key that is
 * not in the database, so a dump of Postgres alone reveals no key. Each key is sealed with
 * AES-256-GCM under a fresh random 96-bit nonce (NIST SP 800-38D §8.2.2: random nonces are
 * safe far beyond the number of keys a beacon holds), with the sealing key's version, the
 * author and the key hash as associated data: a sealed blob copied into another row, or
 * relabelled with another version, fails to open instead of serving another post's key.
 *
 * Sealing keys are versioned so an operator can rotate: `PHAROS_KEY_SEALING_SECRET` is a list
 * `v2:<base64>,v1:<base64>`; the first is current (new deposits, re-sealing), the others only
 * open what they sealed. Each is exactly 32 random bytes: no passphrases, so no KDF to tune
 * and no weak secret to guess offline from a dump.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

/** One version of the sealing key. */
export interface SealingKey {
  /** Stored beside every blob it seals (`content_keys.key_version`). */
  version: string
  /** 32 bytes: an AES-256 key. */
  key: Uint8Array
}

/** Where a sealed key belongs: bound into the seal as associated data. */
export interface SealContext {
  keyHash: Uint8Array
  author: string
}

/** A content key as stored: nonce ‖ ciphertext ‖ tag, and the version of the key that sealed it. */
export interface SealedKey {
  sealed: Uint8Array
  version: string
}

/** A stored key was sealed under a version this worker was not given: it cannot be opened here. */
export class SealingKeyMissingError extends Error {
  override readonly name = 'SealingKeyMissingError'
  readonly version: string

  constructor (version: string) {
    super(`the content key was sealed under sealing key version ${JSON.stringify(version)}, which PHAROS_KEY_SEALING_SECRET does not hold`)
    this.version = version
  }
}

/** A sealed key failed authentication: altered, moved to another row, or sealed under other key bytes of the same version. */
export class SealedKeyCorruptError extends Error {
  override readonly name = 'SealedKeyCorruptError'
}

const NONCE_BYTES = 12
const TAG_BYTES = 16
const KEY_BYTES = 32
/** Separates this use of the sealing key from any other, and lets the format change later. */
const AAD_DOMAIN = 'pharos/content-key-seal/v1'

const VERSION = /^[A-Za-z0-9._-]{1,32}$/
/** Standard or URL-safe base64 of exactly 32 bytes, padding optional. */
const KEY_BASE64 = /^[A-Za-z0-9+/_-]{43}=?$/

/** What `PHAROS_KEY_SEALING_SECRET` must look like, for the error that names it. */
export const SEALING_SECRET_FORMAT = 'a comma-separated list of <version>:<base64 of exactly 32 random bytes>, the current key first (e.g. v2:…,v1:…); a version is 1–32 of [A-Za-z0-9._-] and appears once. Make one: echo "v1:$(openssl rand -base64 32)"'

/** Parses `v2:<base64>,v1:<base64>`: the sealing keys, current first. */
export function parseSealingKeys (raw: string): { ok: true, value: SealingKey[] } | { ok: false, allowed: string } {
  const keys: SealingKey[] = []
  const entries = raw.split(',').map((part) => part.trim()).filter((part) => part.length > 0)
  if (entries.length === 0) return { ok: false, allowed: SEALING_SECRET_FORMAT }
  for (const entry of entries) {
    const colon = entry.indexOf(':')
    const version = entry.slice(0, colon)
    const encoded = entry.slice(colon + 1)
    if (colon === -1 || !VERSION.test(version) || !KEY_BASE64.test(encoded) || keys.some((key) => key.version === version)) {
      return { ok: false, allowed: SEALING_SECRET_FORMAT }
    }
    const key = Buffer.from(encoded.replaceAll('-', '+').replaceAll('_', '/'), 'base64')
    if (key.length !== KEY_BYTES) return { ok: false, allowed: SEALING_SECRET_FORMAT }
    keys.push({ version, key: new Uint8Array(key) })
  }
  return { ok: true, value: keys }
}

/** A new sealing secret of one version, as an embedded worker keeps in its data dir. */
export function generateSealingSecret (version = 'v1'): string {
  return `${version}:${randomBytes(KEY_BYTES).toString('base64')}`
}

function associatedData (version: string, { keyHash, author }: SealContext): Buffer {
  // Each field but the last is NUL-terminated: versions and peer IDs hold no NUL.
  return Buffer.concat([Buffer.from(`${AAD_DOMAIN}\0${version}\0${author}\0`, 'utf8'), keyHash])
}

/** Seals and opens content keys under the configured sealing keys. */
export class ContentKeySealer {
  private readonly keys: ReadonlyMap<string, Uint8Array>
  /** New seals use this version. */
  readonly currentVersion: string

  /** `keys`: current first, as `parseSealingKeys` returns them. */
  constructor (keys: readonly SealingKey[]) {
    const current = keys[0]
    if (current === undefined) throw new TypeError('a sealer needs at least one sealing key')
    this.currentVersion = current.version
    this.keys = new Map(keys.map((key) => [key.version, key.key]))
  }

  /** The versions this sealer can open, current first. */
  versions (): string[] {
    return [...this.keys.keys()]
  }

  /** Whether blobs sealed under `version` can be opened here. */
  canOpen (version: string): boolean {
    return this.keys.has(version)
  }

  seal (plain: Uint8Array, context: SealContext): SealedKey {
    const version = this.currentVersion
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.keyOf(version), nonce, { authTagLength: TAG_BYTES })
    cipher.setAAD(associatedData(version, context))
    const body = Buffer.concat([cipher.update(plain), cipher.final()])
    return { sealed: new Uint8Array(Buffer.concat([nonce, body, cipher.getAuthTag()])), version }
  }

  /** The plain key; SealingKeyMissingError or SealedKeyCorruptError when it cannot be opened. */
  open ({ sealed, version }: SealedKey, context: SealContext): Uint8Array {
    const key = this.keyOf(version)
    if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new SealedKeyCorruptError('a sealed content key is shorter than its nonce and tag')
    const nonce = sealed.subarray(0, NONCE_BYTES)
    const tag = sealed.subarray(sealed.length - TAG_BYTES)
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(associatedData(version, context))
    decipher.setAuthTag(tag)
    try {
      return new Uint8Array(Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]))
    } catch (err) {
      throw new SealedKeyCorruptError(`a sealed content key (version ${JSON.stringify(version)}) failed authentication: altered, moved from another row, or sealed under other key bytes`, { cause: err })
    }
  }

  private keyOf (version: string): Uint8Array {
    const key = this.keys.get(version)
    if (key === undefined) throw new SealingKeyMissingError(version)
    return key
  }
}
