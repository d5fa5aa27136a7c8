/**
 * Fork choice (DESIGN.md §4, after an SPV header database): of an author's entries, the best
 * head is the one with the highest seq, and among equal seqs the lowest CID, comparing the
 * CIDs' bytes lexicographically. Postgres orders bytea the same way (`ORDER BY seq DESC,
 * cid ASC`), so a worker answering from SQL and a peer deciding in memory agree.
 */
import type { CID } from 'multiformats/cid'

export interface HeadCandidate {
  seq: number
  cid: CID
}

export function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0)
    if (diff !== 0) return diff
  }
  return a.length - b.length
}

/** Negative when `a` is the better head, positive when `b` is, 0 for the same entry. */
export function compareHeads (a: HeadCandidate, b: HeadCandidate): number {
  if (a.seq !== b.seq) return b.seq - a.seq
  return compareBytes(a.cid.bytes, b.cid.bytes)
}

/** The best head of `candidates`, or undefined if there are none. */
export function bestHead<T extends HeadCandidate> (candidates: Iterable<T>): T | undefined {
  let best: T | undefined
  for (const candidate of candidates) if (best === undefined || compareHeads(candidate, best) < 0) best = candidate
  return best
}
