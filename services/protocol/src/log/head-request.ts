/**
 * What travels on the `sync` topic: a HEAD request (seed: a peer broadcasts HEAD on
 * `/solcial/sync`, and the seeders, beacons included, answer with the newest head they know).
 *
 *   { v: 1, asker: <peer ID>, at: <ms>, wants: [{ author, cid?, seq? }], sig }
 *   sig: ed25519 by `asker` over "pharos/head-request/1" ‖ canonical CBOR of { asker, at, wants }
 *
 * Each want names an author and, when the asker holds some of its log, the head it holds
 * (`cid` and `seq` together). A seeder that holds a strictly better head (fork-choice order)
 * answers the asker directly, over the sync protocol: a `heads` request carrying those heads
 * as `known`, which is how sync on connect already tells a peer "fetch these from me"; the
 * asker then fetches what it lacks with `entries`. Nothing answers over gossip: an answer is
 * for one peer, and a flood of them would cost every node.
 *
 * Signed, so that a request names its real asker: seeders rate-limit and answer per asker,
 * and a forged asker would aim every seeder's answer at a peer that never asked. `at` (the
 * asker's clock) bounds replays: a request is taken only within HEAD_REQUEST_LIMITS of the
 * receiver's clock, and within that time Plumtree's seen-IDs drop a replay of the same bytes.
 * The gossip message ID is the payload's content hash (`cborCid`, message-id.ts).
 */
import { CID } from 'multiformats/cid'
import { publicKeyFromPeerId } from './author-key.ts'
import { decodeCanonical, domainSeparated, encodeCbor, hasKeys, isMap, isUint, listOf } from './cbor.ts'
import { verifyEd25519 } from './ed25519.ts'
import type { Ed25519Signer } from './ed25519.ts'
import { compareHeads } from './fork-choice.ts'
import type { KnownHead } from './sync-messages.ts'

export const HEAD_REQUEST_DOMAIN = 'pharos/head-request/1'

export const HEAD_REQUEST_LIMITS = {
  /** Authors in one request (guess: an app asks for a screenful of followed authors at a time). */
  authors: 32,
  /** A full request is about 3.3 KiB (32 × author, CID and seq); anything larger is not one. */
  bytes: 8192,
  /** A request older than this by the receiver's clock is stale (guess: the seen-ID cache's 5 minutes). */
  maxAgeMs: 5 * 60_000,
  /** Or this far in its future (guess: clock skew of a phone). */
  maxAheadMs: 60_000
} as const

/** An author the asker wants the newest head of, and the head it holds already (if any). */
export interface HeadWant {
  author: string
  held?: { cid: CID, seq: number }
}

export interface HeadRequest {
  asker: string
  /** The asker's clock when it asked (ms since the epoch). */
  at: number
  wants: HeadWant[]
}

export type HeadRequestErrorCode = 'too-large' | 'not-cbor' | 'non-canonical' | 'bad-shape' | 'bad-asker' | 'bad-signature' | 'stale'

export type HeadRequestResult = { ok: true, value: HeadRequest } | { ok: false, code: HeadRequestErrorCode, detail: string }

const isAuthor = (value: unknown): value is string => typeof value === 'string' && publicKeyFromPeerId(value) !== undefined

function wireWants (wants: readonly HeadWant[]): Array<Record<string, unknown>> {
  // A CBOR map may not hold undefined: a want without a held head has no cid or seq key.
  return wants.map((want) => want.held === undefined ? { author: want.author } : { author: want.author, cid: want.held.cid, seq: want.held.seq })
}

function signedBytes (asker: string, at: number, wants: ReadonlyArray<Record<string, unknown>>): Uint8Array {
  return domainSeparated(HEAD_REQUEST_DOMAIN, encodeCbor({ asker, at, wants }))
}

function want (value: unknown): HeadWant | undefined {
  if (!isMap(value) || !hasKeys(value, ['author'], ['cid', 'seq']) || !isAuthor(value.author)) return undefined
  if (value.cid === undefined && value.seq === undefined) return { author: value.author }
  const cid = CID.asCID(value.cid)
  if (cid === null || !isUint(value.seq)) return undefined
  return { author: value.author, held: { cid, seq: value.seq } }
}

/** Signs a request for `wants` (1..32 authors, each once) at time `at`; returns its canonical bytes. */
export async function signHeadRequest (wants: readonly HeadWant[], at: number, signer: Ed25519Signer): Promise<Uint8Array> {
  if (wants.length === 0 || wants.length > HEAD_REQUEST_LIMITS.authors) throw new RangeError(`a head request names 1..${HEAD_REQUEST_LIMITS.authors} authors, not ${wants.length}`)
  if (new Set(wants.map((w) => w.author)).size !== wants.length) throw new RangeError('a head request names each author once')
  const wire = wireWants(wants)
  const sig = await signer.sign(signedBytes(signer.peerId, at, wire))
  return encodeCbor({ v: 1, asker: signer.peerId, at, wants: wire, sig })
}

/**
 * Decodes a request, checks its shape and bounds, that `at` is within the limits of `now`,
 * and the asker's signature. Never throws.
 */
export async function openHeadRequest (bytes: Uint8Array, now: number): Promise<HeadRequestResult> {
  if (bytes.length > HEAD_REQUEST_LIMITS.bytes) return { ok: false, code: 'too-large', detail: `${bytes.length} bytes > ${HEAD_REQUEST_LIMITS.bytes}` }
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) return { ok: false, code: decoded.code, detail: decoded.detail }
  const value = decoded.value
  const wants = isMap(value) ? listOf(value.wants, HEAD_REQUEST_LIMITS.authors, want) : undefined
  if (!isMap(value) || !hasKeys(value, ['v', 'asker', 'at', 'wants', 'sig']) || value.v !== 1 || typeof value.asker !== 'string' ||
    !isUint(value.at) || !(value.sig instanceof Uint8Array) || wants === undefined || wants.length === 0 ||
    new Set(wants.map((w) => w.author)).size !== wants.length) {
    return { ok: false, code: 'bad-shape', detail: `a head request is { v: 1, asker, at, wants: 1..${HEAD_REQUEST_LIMITS.authors} distinct { author, cid?, seq? }, sig }` }
  }
  const key = publicKeyFromPeerId(value.asker)
  if (key === undefined) return { ok: false, code: 'bad-asker', detail: 'asker must be an ed25519 peer ID' }
  if (value.at < now - HEAD_REQUEST_LIMITS.maxAgeMs || value.at > now + HEAD_REQUEST_LIMITS.maxAheadMs) {
    return { ok: false, code: 'stale', detail: `asked at ${value.at}, ${now - value.at} ms from now` }
  }
  const check = await verifyEd25519(key, signedBytes(value.asker, value.at, wireWants(wants)), value.sig)
  if (check !== 'ok') return { ok: false, code: 'bad-signature', detail: check }
  return { ok: true, value: { asker: value.asker, at: value.at, wants } }
}

/**
 * What a seeder answers with: of `held` (its best head per author), the heads better than what
 * the asker said it holds (fork-choice order), for the authors it asked about; one per want.
 */
export function newerHeads (wants: readonly HeadWant[], held: ReadonlyMap<string, { cid: CID, seq: number }>): KnownHead[] {
  const out: KnownHead[] = []
  for (const w of wants) {
    const ours = held.get(w.author)
    if (ours !== undefined && (w.held === undefined || compareHeads(ours, w.held) < 0)) out.push({ author: w.author, cid: ours.cid, seq: ours.seq })
  }
  return out
}
