/**
 * What travels on the `content` topic: an entry wrapped by the peer that published it.
 *
 *   { v: 1, entry: <entry block bytes>, publisher: <peer ID>, sig: <ed25519 over "pharos/publish/1" ‖ entry> }
 *
 * The entry's own signature says who wrote it; the envelope's says who put it on the
 * overlay. Plumtree forwards payloads unchanged, so a receiver can tell the publisher of a
 * forged entry (banned: it vouched for it) from an honest neighbour that only forwarded it.
 * An envelope whose own signature fails names nobody and is dropped as malformed.
 */
import { publicKeyFromPeerId } from './author-key.ts'
import { decodeCanonical, domainSeparated, encodeCbor, hasKeys, isMap } from './cbor.ts'
import { verifyEd25519 } from './ed25519.ts'
import type { Ed25519Signer } from './ed25519.ts'
import { MAX_ENTRY_BYTES } from './entry.ts'

export const PUBLISH_DOMAIN = 'pharos/publish/1'
/** An envelope is an entry plus about 170 bytes. */
export const MAX_ENVELOPE_BYTES = MAX_ENTRY_BYTES + 512

export interface PublishEnvelope {
  entry: Uint8Array
  publisher: string
  sig: Uint8Array
}

export type EnvelopeErrorCode = 'too-large' | 'not-cbor' | 'non-canonical' | 'bad-shape' | 'bad-publisher' | 'bad-envelope-signature'

export type EnvelopeResult = { ok: true, value: PublishEnvelope } | { ok: false, code: EnvelopeErrorCode, detail: string }

/** Decodes an envelope and checks the publisher's signature over the entry bytes. */
export async function openEnvelope (bytes: Uint8Array): Promise<EnvelopeResult> {
  if (bytes.length > MAX_ENVELOPE_BYTES) return { ok: false, code: 'too-large', detail: `${bytes.length} bytes > ${MAX_ENVELOPE_BYTES}` }
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) return { ok: false, code: decoded.code, detail: decoded.detail }
  const value = decoded.value
  if (!isMap(value) || !hasKeys(value, ['v', 'entry', 'publisher', 'sig']) || value.v !== 1 ||
    !(value.entry instanceof Uint8Array) || !(value.sig instanceof Uint8Array) || typeof value.publisher !== 'string') {
    return { ok: false, code: 'bad-shape', detail: 'an envelope is { v: 1, entry: bytes, publisher: string, sig: bytes }' }
  }
  const key = publicKeyFromPeerId(value.publisher)
  if (key === undefined) return { ok: false, code: 'bad-publisher', detail: 'publisher must be an ed25519 peer ID' }
  const check = await verifyEd25519(key, domainSeparated(PUBLISH_DOMAIN, value.entry), value.sig)
  if (check !== 'ok') return { ok: false, code: 'bad-envelope-signature', detail: check }
  return { ok: true, value: { entry: value.entry, publisher: value.publisher, sig: value.sig } }
}

/** Wraps an entry block for the content topic, signed by `signer`. */
export async function sealEnvelope (entry: Uint8Array, signer: Ed25519Signer): Promise<Uint8Array> {
  const sig = await signer.sign(domainSeparated(PUBLISH_DOMAIN, entry))
  return encodeCbor({ v: 1, entry, publisher: signer.peerId, sig })
}

