/**
 * Fork choice (DESIGN.md §4): the best head is the highest seq, then the lowest CID bytes; it
 * does not depend on the order candidates arrive in, and it is the head Postgres picks with
 * `ORDER BY seq DESC, cid ASC` over bytea (bytewise, shorter first on a common prefix).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { bestHead, compareBytes, compareHeads } from '../src/log/index.ts'
import type { HeadCandidate } from '../src/log/index.ts'
import { createRng } from '../src/overlay/index.ts'
import { hex, sha256, utf8 } from './log-helpers.ts'

const entryCid = (label: string): CID => CID.createV1(0x71, Digest.create(0x12, sha256(utf8(label))))

interface Head extends HeadCandidate {
  label: string
}

const head = (label: string, seq: number, cid = entryCid(label)): Head => ({ label, seq, cid })

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()]
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]))
}

/** What SQL does: ORDER BY seq DESC, encode(cid, 'hex') ASC — lowercase hex sorts like the bytes. */
function sqlBest(candidates: readonly Head[]): Head | undefined {
  return [...candidates].sort((a, b) => b.seq - a.seq || (hex(a.cid.bytes) < hex(b.cid.bytes) ? -1 : hex(a.cid.bytes) > hex(b.cid.bytes) ? 1 : 0))[0]
}

describe('fork choice', () => {
  it('the highest seq wins, whatever its CID', () => {
    const low = head('a', 4)
    const high = head('b', 5)
    assert.equal(bestHead([low, high]), high)
    assert.equal(bestHead([high, low]), high)
    assert.ok(compareHeads(high, low) < 0)
    assert.ok(compareHeads(low, high) > 0)
  })

  it('equal seqs: the lowest CID bytes win', () => {
    const heads = ['x', 'y', 'z', 'w'].map((label) => head(label, 7))
    const lowest = [...heads].sort((a, b) => compareBytes(a.cid.bytes, b.cid.bytes))[0]
    assert.equal(bestHead(heads), lowest)
    for (const other of heads) if (other !== lowest && lowest !== undefined) assert.ok(compareHeads(lowest, other) < 0)
  })

  it('the same entry compares equal; no candidates give no head', () => {
    const a = head('a', 3)
    assert.equal(compareHeads(a, { seq: 3, cid: CID.parse(a.cid.toString()) }), 0)
    assert.equal(bestHead([]), undefined)
  })

  it('every permutation of a set with ties and forks gives the same best head', () => {
    const set = [head('a', 2), head('b', 3), head('c', 3), head('d', 1), head('e', 3), head('f', 0)]
    const expected = bestHead(set)
    assert.ok(expected !== undefined && expected.seq === 3)
    for (const order of permutations(set)) assert.equal(bestHead(order), expected)
  })

  it('compareHeads is a total order: sorting any permutation gives one sequence', () => {
    const set = [head('a', 2), head('b', 3), head('c', 3), head('d', 1), head('e', 3)]
    const sorted = [...set].sort(compareHeads).map((h) => h.label)
    for (const order of permutations(set)) assert.deepEqual([...order].sort(compareHeads).map((h) => h.label), sorted)
  })

  it('agrees with Postgres\' ordering (bytes as hex) on seeded random sets, CIDs of other codecs and lengths included', () => {
    const rng = createRng(2024)
    for (let round = 0; round < 500; round++) {
      const size = 1 + (rng.nextUint32() % 12)
      const candidates: Head[] = []
      for (let i = 0; i < size; i++) {
        const label = `${round}/${i}`
        const kind = rng.nextUint32() % 4
        // Mostly entry CIDs; some raw, sha2-512 and CIDv0, so lengths and prefixes differ.
        const cid = kind === 0
          ? CID.createV1(0x55, Digest.create(0x12, sha256(utf8(label))))
          : kind === 1
            ? CID.createV1(0x71, Digest.create(0x13, new Uint8Array([...sha256(utf8(label)), ...sha256(utf8(label + '!'))])))
            : kind === 2 ? CID.createV0(Digest.create(0x12, sha256(utf8(label)))) : entryCid(label)
        candidates.push(head(label, rng.nextUint32() % 4, cid))
      }
      assert.equal(bestHead(candidates), sqlBest(candidates), `round ${round}`)
    }
  })

  it('compareBytes orders bytewise and a prefix first, like bytea', () => {
    const cases: Array<[number[], number[]]> = [[[], [0]], [[1], [1, 0]], [[0, 255], [1]], [[1, 2, 3], [1, 2, 4]], [[127], [128]]]
    for (const [a, b] of cases) {
      assert.ok(compareBytes(Uint8Array.from(a), Uint8Array.from(b)) < 0, `${a} < ${b}`)
      assert.ok(compareBytes(Uint8Array.from(b), Uint8Array.from(a)) > 0, `${b} > ${a}`)
      assert.ok(hex(Uint8Array.from(a)) < hex(Uint8Array.from(b)))
    }
    assert.equal(compareBytes(Uint8Array.of(5, 6), Uint8Array.of(5, 6)), 0)
  })
})
