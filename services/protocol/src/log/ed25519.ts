/**
 * Ed25519 verification with one decision rule for every Pharos code path (beacon ingest,
 * peer SDK, CLI, browsers): RFC 8032 §5.1.7 with strict encodings, checked here in pure
 * code before the platform verifier sees the signature:
 *
 * - the signature is 64 bytes and its scalar S is canonical (S < L), so a signature cannot
 *   be re-encoded into a second valid one (malleability);
 * - the public key A and the commitment R are canonical encodings (y < p);
 * - neither A nor R is a point of small order (libsodium's rule), so a key cannot "sign"
 *   every message and cofactored and cofactorless verifiers cannot disagree on them.
 *
 * What passes goes to WebCrypto's Ed25519 (OpenSSL in Node, BoringSSL/NSS in browsers):
 * cofactorless, about 10× the speed of pure JavaScript. WebCrypto is a global in Node ≥ 20
 * and every current browser, so this module still imports nothing that does I/O.
 */

/** The order of the prime-order subgroup, 2^252 + 27742317777372353535851937790883648493. */
const L = (1n << 252n) + 27742317777372353535851937790883648493n
/** The field prime, 2^255 - 19. */
const P = (1n << 255n) - 19n

/**
 * The canonical encodings of the eight points of small order, compared with the sign bit
 * cleared (so both signs of each match). test/ed25519-agreement.test.ts derives the set from
 * the curve itself and checks it against this table.
 */
export const SMALL_ORDER_Y: readonly string[] = Object.freeze([
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'
])
const smallOrderY = new Set(SMALL_ORDER_Y)

export type SignatureCheck = 'ok' | 'bad-length' | 'non-canonical-s' | 'non-canonical-point' | 'small-order-point'

function littleEndian (bytes: Uint8Array): bigint {
  let value = 0n
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0)
  return value
}

/** Two hex digits per byte value: `hex` runs twice or more per verify (issue 21's profile: 3 % of ingest with toString and padStart). */
const HEX_PAIRS = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'))

function hex (bytes: Uint8Array): string {
  let out = ''
  for (const byte of bytes) out += HEX_PAIRS[byte] as string
  return out
}

/** Checks a 32-byte point encoding: canonical y, not of small order. */
export function checkPoint (encoded: Uint8Array): SignatureCheck {
  if (encoded.length !== 32) return 'bad-length'
  // A copy: on a Node Buffer (what libp2p keys sign into, what pg returns) slice() is a view,
  // and clearing the sign bit in it would corrupt the caller's signature.
  const y = new Uint8Array(encoded)
  y[31] = (y[31] ?? 0) & 0x7f
  if (littleEndian(y) >= P) return 'non-canonical-point'
  if (smallOrderY.has(hex(y))) return 'small-order-point'
  return 'ok'
}

/** The encoding checks of RFC 8032 strict verification, without the curve equation. */
export function checkSignatureEncoding (publicKey: Uint8Array, signature: Uint8Array): SignatureCheck {
  if (signature.length !== 64) return 'bad-length'
  if (littleEndian(signature.subarray(32)) >= L) return 'non-canonical-s'
  const key = checkPoint(publicKey)
  if (key !== 'ok') return key
  return checkPoint(signature.subarray(0, 32))
}

/** WebCrypto's key type, named without the DOM lib (tsconfig targets Node's globals). */
type SubtleKey = Awaited<ReturnType<typeof globalThis.crypto.subtle.importKey>>

/** A key imported once is reused: authors sign many entries (bounded, oldest dropped). */
const importedKeys = new Map<string, Promise<SubtleKey>>()
const IMPORTED_KEYS_MAX = 4096

async function importKey (publicKey: Uint8Array): Promise<SubtleKey> {
  const id = hex(publicKey)
  let key = importedKeys.get(id)
  if (key === undefined) {
    if (importedKeys.size >= IMPORTED_KEYS_MAX) {
      const oldest = importedKeys.keys().next().value
      if (oldest !== undefined) importedKeys.delete(oldest)
    }
    key = globalThis.crypto.subtle.importKey('raw', new Uint8Array(publicKey), { name: 'Ed25519' }, false, ['verify'])
    importedKeys.set(id, key)
    key.catch(() => { importedKeys.delete(id) })
  }
  return await key
}

/**
 * Verifies `signature` over `message` under the strict rule above. Returns the first check
 * that failed, or 'bad-signature' when the encodings are fine but the equation does not hold.
 */
export async function verifyEd25519 (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<SignatureCheck | 'bad-signature'> {
  // Copies taken first (slice() of a Buffer is a view): WebCrypto verifies, after the await,
  // exactly the bytes that were checked, whatever the caller does with its buffers meanwhile.
  const key = new Uint8Array(publicKey)
  const sig = new Uint8Array(signature)
  const data = new Uint8Array(message)
  const encoding = checkSignatureEncoding(key, sig)
  if (encoding !== 'ok') return encoding
  let valid: boolean
  try {
    valid = await globalThis.crypto.subtle.verify('Ed25519', await importKey(key), sig, data)
  } catch {
    // A key WebCrypto cannot decode (not on the curve) cannot have signed anything.
    return 'bad-signature'
  }
  return valid ? 'ok' : 'bad-signature'
}

/** Something that signs with one ed25519 key: a libp2p private key fits (`sign`, and its peer ID). */
export interface Ed25519Signer {
  /** The signer's peer ID string (12D3KooW…). */
  readonly peerId: string
  sign: (message: Uint8Array) => Uint8Array | Promise<Uint8Array>
}

/** The signer for a key that signs bytes (a libp2p private key) and the peer ID it belongs to. */
export function ed25519Signer (peerId: string, key: { sign: (message: Uint8Array) => Uint8Array | Promise<Uint8Array> }): Ed25519Signer {
  return {
    peerId,
    // A plain copy: libp2p hands out a Buffer that may be a view into a shared pool.
    sign: async (message) => new Uint8Array(await key.sign(message))
  }
}
