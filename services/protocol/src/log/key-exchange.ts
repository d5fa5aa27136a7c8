/**
 * Key exchange (DESIGN.md §4, after Solcial's GETKEY): an author encrypts private content
 * with a symmetric key whose SHA-256 (the key hash) goes in the post's metadata. The author
 * may deposit that key with a beacon together with an entitlement rule; the beacon hands
 * the key only to peers the rule admits, over a direct Noise-encrypted stream
 * (`/<network>/keyexchange/1.0.0`), never over gossip.
 *
 * The default rule is an allow-list the author signs:
 *
 *   { v: 1, type: "allow-list", author, keyHash, version, peers: [peer ID…], sig }
 *
 * `sig` is the author's over "pharos/allow-list/1" ‖ dag-cbor(the map without sig). A
 * higher `version` replaces a lower one, so an author can add or remove readers.
 *
 * Frames (one request, one response per stream; or one pushed `key` frame):
 * - `{ t: "deposit", key, rule }` → `{ t: "deposited", keyHash }` | error
 * - `{ t: "getkey", keyHash }` → `{ t: "key", keyHash, key }` | `{ t: "denied", reason, code? }` | error
 *   (`code`, one of KEY_DENIAL_CODES, lets the asker tell a refusal by the rule from a holder
 *   that simply lacks the key without reading `reason`; holders before issue 23 send none)
 * On the `keyexchange` topic a peer may broadcast `{ t: "getkey", keyHash, requester }`;
 * a holder that admits the requester dials it and pushes a `key` frame.
 *
 * Any holder answers: a beacon the author deposited the key with, the author itself, and the
 * allowed peers the author pushed it to (a `deposit` frame on a direct stream from the author:
 * the same frame a beacon takes, docs/private-posts.md). A private post's entry names its key
 * by `params.enckey`: the key hash as a base58btc multibase sha2-256 multihash
 * (`encodeKeyHashParam`), as in the Solcial notes' `"enckey": "z…"`.
 */
import { base58btc } from 'multiformats/bases/base58'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { publicKeyFromPeerId } from './author-key.ts'
import { decodeCanonical, domainSeparated, encodeCbor, hasKeys, isMap, isUint } from './cbor.ts'
import { verifyEd25519 } from './ed25519.ts'
import type { Ed25519Signer } from './ed25519.ts'

export const ALLOW_LIST_DOMAIN = 'pharos/allow-list/1'
/** Symmetric keys of 16..64 bytes (AES-128 to two 256-bit keys). */
export const KEY_BYTES = { min: 16, max: 64 } as const
export const MAX_ALLOW_LIST_PEERS = 10_000
/** An allow-list of the maximum size, plus framing. */
export const MAX_KEY_EXCHANGE_FRAME_BYTES = MAX_ALLOW_LIST_PEERS * 56 + 4096

export interface AllowList {
  v: 1
  type: 'allow-list'
  author: string
  keyHash: Uint8Array
  version: number
  peers: string[]
  sig: Uint8Array
}

/**
 * Why a holder refused a GETKEY: `not-entitled` (the entitlement check said no), `unregistered`
 * (the requester is not a registered account), `unknown-key` (this holder has no such key).
 */
export const KEY_DENIAL_CODES = ['not-entitled', 'unregistered', 'unknown-key'] as const
export type KeyDenialCode = typeof KEY_DENIAL_CODES[number]

export type KeyExchangeMessage =
  | { t: 'deposit', key: Uint8Array, rule: Uint8Array }
  | { t: 'deposited', keyHash: Uint8Array }
  | { t: 'getkey', keyHash: Uint8Array, requester?: string }
  | { t: 'key', keyHash: Uint8Array, key: Uint8Array }
  | { t: 'denied', reason: string, code?: KeyDenialCode }
  | { t: 'error', code: 'bad-request' | 'unavailable', message: string }

export type Decoded<T> = { ok: true, value: T } | { ok: false, detail: string }

export async function keyHashOf (key: Uint8Array): Promise<Uint8Array> {
  return (await sha256.digest(key)).digest
}

/** `params.enckey` of a private post: the key hash as a base58btc sha2-256 multihash ("z…"). */
export function encodeKeyHashParam (keyHash: Uint8Array): string {
  if (keyHash.length !== 32) throw new RangeError(`a key hash is 32 bytes (SHA-256), not ${keyHash.length}`)
  return base58btc.encode(Digest.create(sha256.code, keyHash).bytes)
}

/** The key hash in a `params.enckey` value, or undefined if it is not a base58btc sha2-256 multihash. */
export function decodeKeyHashParam (value: unknown): Uint8Array | undefined {
  if (typeof value !== 'string' || value.length > 128) return undefined
  try {
    const digest = Digest.decode(base58btc.decode(value))
    return digest.code === sha256.code && digest.digest.length === 32 ? digest.digest : undefined
  } catch {
    return undefined
  }
}

const isDenialCode = (value: unknown): value is KeyDenialCode => (KEY_DENIAL_CODES as readonly unknown[]).includes(value)

const isPeerId = (value: unknown): value is string => typeof value === 'string' && publicKeyFromPeerId(value) !== undefined
const isHash = (value: unknown): value is Uint8Array => value instanceof Uint8Array && value.length === 32

function allowListBody (list: Omit<AllowList, 'sig'>): Uint8Array {
  const { v, type, author, keyHash, version, peers } = list
  return domainSeparated(ALLOW_LIST_DOMAIN, encodeCbor({ v, type, author, keyHash, version, peers }))
}

/** Signs an allow-list as its author. */
export async function signAllowList (list: { keyHash: Uint8Array, version: number, peers: string[] }, signer: Ed25519Signer): Promise<Uint8Array> {
  const body: Omit<AllowList, 'sig'> = { v: 1, type: 'allow-list', author: signer.peerId, keyHash: list.keyHash, version: list.version, peers: [...list.peers] }
  return encodeCbor({ ...body, sig: await signer.sign(allowListBody(body)) })
}

/** Decodes an allow-list and checks its author's signature. */
export async function openAllowList (bytes: Uint8Array): Promise<Decoded<AllowList>> {
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) return { ok: false, detail: decoded.detail }
  const value = decoded.value
  if (!isMap(value) || !hasKeys(value, ['v', 'type', 'author', 'keyHash', 'version', 'peers', 'sig']) || value.v !== 1 || value.type !== 'allow-list' ||
    !isPeerId(value.author) || !isHash(value.keyHash) || !isUint(value.version) || !(value.sig instanceof Uint8Array) ||
    !Array.isArray(value.peers) || value.peers.length > MAX_ALLOW_LIST_PEERS || !value.peers.every(isPeerId)) {
    return { ok: false, detail: 'an allow-list is { v: 1, type: "allow-list", author, keyHash (32 bytes), version, peers: [peer ID], sig }' }
  }
  const list = value as unknown as AllowList
  const key = publicKeyFromPeerId(list.author)
  if (key === undefined) return { ok: false, detail: 'author is not an ed25519 peer ID' }
  const check = await verifyEd25519(key, allowListBody(list), list.sig)
  if (check !== 'ok') return { ok: false, detail: `allow-list signature: ${check}` }
  return { ok: true, value: list }
}

export function encodeKeyExchange (message: KeyExchangeMessage): Uint8Array {
  return encodeCbor(message)
}

export function decodeKeyExchange (bytes: Uint8Array): Decoded<KeyExchangeMessage> {
  if (bytes.length > MAX_KEY_EXCHANGE_FRAME_BYTES) return { ok: false, detail: `frame of ${bytes.length} bytes > ${MAX_KEY_EXCHANGE_FRAME_BYTES}` }
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) return { ok: false, detail: decoded.detail }
  const value = decoded.value
  if (!isMap(value)) return { ok: false, detail: 'a key-exchange frame is a map' }
  const isKey = (key: unknown): key is Uint8Array => key instanceof Uint8Array && key.length >= KEY_BYTES.min && key.length <= KEY_BYTES.max
  switch (value.t) {
    case 'deposit':
      if (hasKeys(value, ['t', 'key', 'rule']) && isKey(value.key) && value.rule instanceof Uint8Array) return { ok: true, value: { t: 'deposit', key: value.key, rule: value.rule } }
      break
    case 'deposited':
      if (hasKeys(value, ['t', 'keyHash']) && isHash(value.keyHash)) return { ok: true, value: { t: 'deposited', keyHash: value.keyHash } }
      break
    case 'getkey':
      if (hasKeys(value, ['t', 'keyHash'], ['requester']) && isHash(value.keyHash) && (value.requester === undefined || isPeerId(value.requester))) {
        return { ok: true, value: value.requester === undefined ? { t: 'getkey', keyHash: value.keyHash } : { t: 'getkey', keyHash: value.keyHash, requester: value.requester } }
      }
      break
    case 'key':
      if (hasKeys(value, ['t', 'keyHash', 'key']) && isHash(value.keyHash) && isKey(value.key)) return { ok: true, value: { t: 'key', keyHash: value.keyHash, key: value.key } }
      break
    case 'denied':
      if (hasKeys(value, ['t', 'reason'], ['code']) && typeof value.reason === 'string' && (value.code === undefined || isDenialCode(value.code))) {
        const reason = value.reason.slice(0, 512)
        return { ok: true, value: value.code === undefined ? { t: 'denied', reason } : { t: 'denied', reason, code: value.code } }
      }
      break
    case 'error':
      if (hasKeys(value, ['t', 'code', 'message']) && (value.code === 'bad-request' || value.code === 'unavailable') && typeof value.message === 'string') {
        return { ok: true, value: { t: 'error', code: value.code, message: value.message.slice(0, 512) } }
      }
      break
  }
  // Not String(value.t): a decoded map with its own "toString" key cannot be turned into a string.
  return { ok: false, detail: `malformed key-exchange frame (t=${typeof value.t === 'string' ? value.t.slice(0, 32) : typeof value.t})` }
}
