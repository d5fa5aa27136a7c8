/**
 * Storage-proof challenges, `/<network>/audit/1.0.0` (DESIGN.md §5; the 4EVERLAND seed's
 * "storage challenge"): any peer asks a worker to prove it holds blocks. One request and one
 * response per stream, each a length-prefixed canonical dag-cbor map:
 *
 *   request:  { t: "challenge", nonce: <32 random bytes>, cids: [CID…] }   (1..MAX_CHALLENGE_CIDS)
 *   response: { t: "proofs", proofs: [sha256(nonce ‖ block) | null…] }   (one per CID, in order; null = "missing")
 *           | { t: "refused", reason: "rate-limited" | "busy" }
 *
 * A fresh nonce makes an answer impossible to precompute or replay: only a holder of the
 * bytes can hash them after the nonce. The challenger checks each proof against its own copy
 * of the block; a CID it has no copy of proves nothing either way.
 */
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { decodeCanonical, encodeCbor, hasKeys, isMap } from '../log/cbor.ts'

/** CIDs per challenge: enough to sample a DAG, few enough that answering stays cheap. */
export const MAX_CHALLENGE_CIDS = 64
export const CHALLENGE_NONCE_BYTES = 32
const PROOF_BYTES = 32
/** Largest frame either way: 64 CIDs of up to 100 bytes, or 64 proofs, plus framing. */
export const MAX_CHALLENGE_FRAME_BYTES = 8 * 1024

export type ChallengeRefusal = 'rate-limited' | 'busy'

export interface ChallengeRequest {
  t: 'challenge'
  nonce: Uint8Array
  cids: CID[]
}

export type ChallengeResponse =
  | { t: 'proofs', proofs: Array<Uint8Array | null> }
  | { t: 'refused', reason: ChallengeRefusal }

export type ChallengeDecoded<T> = { ok: true, value: T } | { ok: false, detail: string }

const REFUSALS: readonly ChallengeRefusal[] = ['rate-limited', 'busy']

function decodeMap (bytes: Uint8Array): Record<string, unknown> | string {
  if (bytes.length > MAX_CHALLENGE_FRAME_BYTES) return `frame of ${bytes.length} bytes > ${MAX_CHALLENGE_FRAME_BYTES}`
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) return decoded.detail
  if (!isMap(decoded.value)) return 'an audit frame is a map with a type tag t'
  return decoded.value
}

export function encodeChallengeRequest (request: ChallengeRequest): Uint8Array {
  return encodeCbor(request)
}

export function encodeChallengeResponse (response: ChallengeResponse): Uint8Array {
  return encodeCbor(response)
}

export function decodeChallengeRequest (bytes: Uint8Array): ChallengeDecoded<ChallengeRequest> {
  const value = decodeMap(bytes)
  if (typeof value === 'string') return { ok: false, detail: value }
  if (value.t !== 'challenge' || !hasKeys(value, ['t', 'nonce', 'cids'])) return { ok: false, detail: 'a challenge is { t: "challenge", nonce, cids }' }
  if (!(value.nonce instanceof Uint8Array) || value.nonce.length !== CHALLENGE_NONCE_BYTES) return { ok: false, detail: `nonce must be ${CHALLENGE_NONCE_BYTES} bytes` }
  if (!Array.isArray(value.cids) || value.cids.length === 0 || value.cids.length > MAX_CHALLENGE_CIDS) return { ok: false, detail: `cids must list 1..${MAX_CHALLENGE_CIDS} CIDs` }
  const cids: CID[] = []
  for (const item of value.cids) {
    const cid = CID.asCID(item)
    if (cid === null) return { ok: false, detail: 'cids must be CIDs' }
    cids.push(cid)
  }
  return { ok: true, value: { t: 'challenge', nonce: value.nonce, cids } }
}

export function decodeChallengeResponse (bytes: Uint8Array, expectedProofs: number): ChallengeDecoded<ChallengeResponse> {
  const value = decodeMap(bytes)
  if (typeof value === 'string') return { ok: false, detail: value }
  if (value.t === 'refused' && hasKeys(value, ['t', 'reason'])) {
    const reason = REFUSALS.find((known) => known === value.reason)
    if (reason !== undefined) return { ok: true, value: { t: 'refused', reason } }
  }
  if (value.t === 'proofs' && hasKeys(value, ['t', 'proofs']) && Array.isArray(value.proofs) && value.proofs.length === expectedProofs &&
    value.proofs.every((proof) => proof === null || (proof instanceof Uint8Array && proof.length === PROOF_BYTES))) {
    return { ok: true, value: { t: 'proofs', proofs: value.proofs as Array<Uint8Array | null> } }
  }
  return { ok: false, detail: `an answer is { t: "proofs", proofs: [${expectedProofs} × (32 bytes | null)] } or { t: "refused", reason }` }
}

/** sha256(nonce ‖ block): what a holder of `block` answers to a challenge with `nonce`. */
export async function challengeProof (nonce: Uint8Array, block: Uint8Array): Promise<Uint8Array> {
  const input = new Uint8Array(nonce.length + block.length)
  input.set(nonce)
  input.set(block, nonce.length)
  return (await sha256.digest(input)).digest
}

/**
 * Per CID: `proved` (the proof matches our copy), `missing` (the worker says it does not hold
 * it), `wrong` (a proof that does not match: the worker holds other bytes, or guessed), or
 * `unverifiable` (we have no copy to check against).
 */
export type ChallengeOutcome = 'proved' | 'missing' | 'wrong' | 'unverifiable'

export interface ChallengeVerdict {
  /**
   * `passed`: every CID we could check was proved (and there was at least one); `failed`:
   * some were missing or wrong; `unverifiable`: we held none of them.
   */
  verdict: 'passed' | 'failed' | 'unverifiable'
  results: Array<{ cid: CID, outcome: ChallengeOutcome }>
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0)
  return diff === 0
}

/** A copy we cannot vouch for proves nothing: sha2-256 copies are checked here, others are the caller's word. */
async function copyMatches (cid: CID, copy: Uint8Array): Promise<boolean> {
  if (cid.multihash.code !== sha256.code) return true
  return sameBytes((await sha256.digest(copy)).digest, cid.multihash.digest)
}

/**
 * Checks a worker's proofs against the challenger's own copies. `ownCopy` returns the
 * challenger's bytes of a block, or `undefined` if it does not hold it; a sha2-256 copy that
 * does not match its CID counts as not held (other hashes must come from a verified store).
 */
export async function verifyChallengeProofs (
  request: Pick<ChallengeRequest, 'nonce' | 'cids'>,
  proofs: ReadonlyArray<Uint8Array | null>,
  ownCopy: (cid: CID) => Promise<Uint8Array | undefined>
): Promise<ChallengeVerdict> {
  if (proofs.length !== request.cids.length) throw new RangeError(`${proofs.length} proofs for ${request.cids.length} CIDs`)
  const results: ChallengeVerdict['results'] = []
  for (const [index, cid] of request.cids.entries()) {
    const proof = proofs[index] ?? null
    const copy = await ownCopy(cid)
    if (copy === undefined || !await copyMatches(cid, copy)) {
      results.push({ cid, outcome: 'unverifiable' })
    } else if (proof === null) {
      results.push({ cid, outcome: 'missing' })
    } else {
      results.push({ cid, outcome: sameBytes(proof, await challengeProof(request.nonce, copy)) ? 'proved' : 'wrong' })
    }
  }
  const checked = results.filter((result) => result.outcome !== 'unverifiable')
  const verdict = checked.length === 0 ? 'unverifiable' : checked.every((result) => result.outcome === 'proved') ? 'passed' : 'failed'
  return { verdict, results }
}

/** What a challenger learns: a verdict over the proofs, or the worker's refusal to answer now. */
export type ChallengeResult = ChallengeVerdict | { verdict: 'refused', reason: ChallengeRefusal, results: [] }

/** Decodes a worker's answer to `request` and judges it against the challenger's own copies. */
export async function judgeChallengeAnswer (
  request: Pick<ChallengeRequest, 'nonce' | 'cids'>,
  answer: Uint8Array,
  ownCopy: (cid: CID) => Promise<Uint8Array | undefined>
): Promise<ChallengeDecoded<ChallengeResult>> {
  const decoded = decodeChallengeResponse(answer, request.cids.length)
  if (!decoded.ok) return decoded
  if (decoded.value.t === 'refused') return { ok: true, value: { verdict: 'refused', reason: decoded.value.reason, results: [] } }
  return { ok: true, value: await verifyChallengeProofs(request, decoded.value.proofs, ownCopy) }
}
