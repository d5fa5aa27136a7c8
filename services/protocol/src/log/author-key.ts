/**
 * Peer IDs and the ed25519 keys inside them. An ed25519 peer ID is the base58btc encoding of
 * an identity multihash of the libp2p protobuf `PublicKey { Type: Ed25519 (1), Data: 32 bytes }`,
 * so the author key of an entry is read from its `author` field, with no lookup. Written out
 * here (not taken from @libp2p/peer-id) because the protocol core imports no libp2p.
 */
import { base58btc } from 'multiformats/bases/base58'

/** identity multihash (0x00, length 36) + protobuf tag 1 = Ed25519 + tag 2, length 32. */
const PREFIX = Uint8Array.of(0x00, 0x24, 0x08, 0x01, 0x12, 0x20)

/**
 * Keys read from peer IDs, by peer ID (bounded, oldest dropped): an entry's author and its
 * envelope's publisher are each read several times per entry (decode, verify), and authors
 * sign many entries; a base58 decode and re-encode is a few % of ingest's CPU (issue 21).
 */
const knownKeys = new Map<string, Uint8Array>()
const KNOWN_KEYS_MAX = 4096

/** The 32-byte ed25519 public key inside a peer ID string, or undefined if it is not one (canonically encoded). */
export function publicKeyFromPeerId (peerId: string): Uint8Array | undefined {
  const known = knownKeys.get(peerId)
  // A copy: the caller may write into what it is given.
  if (known !== undefined) return known.slice()
  const key = readPublicKey(peerId)
  if (key === undefined) return undefined
  if (knownKeys.size >= KNOWN_KEYS_MAX) {
    const oldest = knownKeys.keys().next().value
    if (oldest !== undefined) knownKeys.delete(oldest)
  }
  knownKeys.set(peerId, key.slice())
  return key
}

/**
 * Whether `peerId` is the canonical string of an ed25519 peer ID. Unlike publicKeyFromPeerId
 * it keeps nothing: for checking long lists (a registry page) without evicting the keys that
 * entry verification reads again and again.
 */
export function isEd25519PeerId (peerId: string): boolean {
  return knownKeys.has(peerId) || readPublicKey(peerId) !== undefined
}

function readPublicKey (peerId: string): Uint8Array | undefined {
  if (!peerId.startsWith('12D3KooW') || peerId.length > 60) return undefined
  let bytes: Uint8Array
  try {
    bytes = base58btc.baseDecode(peerId)
  } catch {
    return undefined
  }
  if (bytes.length !== PREFIX.length + 32) return undefined
  for (let i = 0; i < PREFIX.length; i++) if (bytes[i] !== PREFIX[i]) return undefined
  // One spelling per key: base-x reads a character beyond Latin-1 as a zero digit wherever the
  // value so far is a multiple of 256, so some peer IDs have a second string that decodes to
  // the same bytes (one "1" replaced by, say, "Ā"). Only the re-encoding is the peer ID.
  if (base58btc.baseEncode(bytes) !== peerId) return undefined
  return bytes.slice(PREFIX.length)
}

/** The peer ID string of an ed25519 public key. */
export function peerIdFromPublicKey (publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new RangeError(`an ed25519 public key is 32 bytes, not ${publicKey.length}`)
  const bytes = new Uint8Array(PREFIX.length + 32)
  bytes.set(PREFIX)
  bytes.set(publicKey, PREFIX.length)
  return base58btc.baseEncode(bytes)
}
