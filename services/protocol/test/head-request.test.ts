/**
 * HEAD requests on the `sync` topic (head-request.ts): signed by the asker, bounded, fresh,
 * canonical; and the heads a seeder answers with.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { cborCid, encodeCbor, HEAD_REQUEST_LIMITS, messageIdOf, newerHeads, openHeadRequest, signHeadRequest } from '../src/log/index.ts'
import type { HeadWant } from '../src/log/index.ts'
import { namedKey } from './log-helpers.ts'

const asker = namedKey('head-asker')
const other = namedKey('head-other')
const author = namedKey('head-author').peerId
const NOW = 1_700_000_000_000

async function cid (label: string): Promise<CID> {
  return CID.createV1(0x71, await sha256.digest(new TextEncoder().encode(label)))
}

describe('head requests', () => {
  it('round-trip: the asker, its clock and what it holds per author', async () => {
    const held = await cid('e4')
    const wants: HeadWant[] = [{ author, held: { cid: held, seq: 4 } }, { author: other.peerId }]
    const bytes = await signHeadRequest(wants, NOW, asker.signer)
    const opened = await openHeadRequest(bytes, NOW + 1000)
    assert.ok(opened.ok, JSON.stringify(opened))
    assert.equal(opened.value.asker, asker.peerId)
    assert.equal(opened.value.at, NOW)
    assert.equal(opened.value.wants.length, 2)
    assert.equal(opened.value.wants[0]?.held?.cid.toString(), held.toString())
    assert.equal(opened.value.wants[0]?.held?.seq, 4)
    assert.equal(opened.value.wants[1]?.held, undefined)
    assert.equal(await messageIdOf('sync', bytes), (await cborCid(bytes)).toString(), 'its gossip ID is its content hash')
  })

  it('refuses a request whose signature is not the asker\'s', async () => {
    const bytes = await signHeadRequest([{ author }], NOW, asker.signer)
    const value = dagCbor.decode<Record<string, unknown>>(bytes)
    const forged = encodeCbor({ ...value, asker: other.peerId })
    const opened = await openHeadRequest(forged, NOW)
    assert.equal(opened.ok, false)
    assert.equal(!opened.ok && opened.code, 'bad-signature')
    const tampered = encodeCbor({ ...value, wants: [{ author: other.peerId }] })
    assert.equal((await openHeadRequest(tampered, NOW)).ok, false)
  })

  it('refuses a stale request, or one from too far in the future', async () => {
    const bytes = await signHeadRequest([{ author }], NOW, asker.signer)
    const late = await openHeadRequest(bytes, NOW + HEAD_REQUEST_LIMITS.maxAgeMs + 1)
    assert.equal(!late.ok && late.code, 'stale')
    const early = await openHeadRequest(bytes, NOW - HEAD_REQUEST_LIMITS.maxAheadMs - 1)
    assert.equal(!early.ok && early.code, 'stale')
    assert.ok((await openHeadRequest(bytes, NOW + HEAD_REQUEST_LIMITS.maxAgeMs)).ok)
  })

  it('is bounded: 1..32 distinct authors, a head with both cid and seq, at most 8 KiB', async () => {
    const many = Array.from({ length: HEAD_REQUEST_LIMITS.authors + 1 }, (_, i) => ({ author: namedKey(`a${i}`).peerId }))
    await assert.rejects(signHeadRequest(many, NOW, asker.signer), RangeError)
    await assert.rejects(signHeadRequest([], NOW, asker.signer), RangeError)
    await assert.rejects(signHeadRequest([{ author }, { author }], NOW, asker.signer), RangeError)
    const full = await signHeadRequest(await Promise.all(many.slice(0, HEAD_REQUEST_LIMITS.authors).map(async (want, i) => ({ ...want, held: { cid: await cid(`h${i}`), seq: 2 ** 40 } }))), NOW, asker.signer)
    assert.ok(full.length <= HEAD_REQUEST_LIMITS.bytes, `a full request is ${full.length} bytes`)
    const value = dagCbor.decode<Record<string, unknown>>(full)
    const shape = async (patch: Record<string, unknown>): Promise<string | false> => {
      const opened = await openHeadRequest(encodeCbor({ ...value, ...patch }), NOW)
      return !opened.ok && opened.code
    }
    assert.equal(await shape({ wants: many.map((w) => ({ author: w.author })) }), 'bad-shape')
    assert.equal(await shape({ wants: [{ author, cid: await cid('x') }] }), 'bad-shape', 'a cid without its seq')
    assert.equal(await shape({ wants: [{ author: 'not-a-peer' }] }), 'bad-shape')
    assert.equal(await shape({ extra: 1 }), 'bad-shape')
    assert.equal(await shape({ asker: 'QmNotEd25519' }), 'bad-asker')
    assert.equal(await shape({ pad: new Uint8Array(HEAD_REQUEST_LIMITS.bytes) }), 'too-large')
    assert.equal((await openHeadRequest(Uint8Array.of(0xa1, 0x61), NOW)).ok, false)
  })

  it('a seeder answers with the heads better than what the asker holds, and only those', async () => {
    const [e3, e5, f5] = [await cid('e3'), await cid('e5'), await cid('f5')]
    const held = new Map([[author, { cid: e5, seq: 5 }], [other.peerId, { cid: e3, seq: 3 }]])
    const third = namedKey('head-third').peerId
    const wants: HeadWant[] = [{ author, held: { cid: e3, seq: 3 } }, { author: other.peerId, held: { cid: e3, seq: 3 } }, { author: third }]
    assert.deepEqual(newerHeads(wants, held), [{ author, cid: e5, seq: 5 }])
    assert.deepEqual(newerHeads([{ author: other.peerId }], held), [{ author: other.peerId, cid: e3, seq: 3 }], 'an asker that holds nothing gets the head')
    // At an equal seq the lower CID is the better head (fork choice).
    const [low, high] = Buffer.compare(Buffer.from(e5.bytes), Buffer.from(f5.bytes)) < 0 ? [e5, f5] : [f5, e5]
    assert.deepEqual(newerHeads([{ author, held: { cid: high, seq: 5 } }], new Map([[author, { cid: low, seq: 5 }]])), [{ author, cid: low, seq: 5 }])
    assert.deepEqual(newerHeads([{ author, held: { cid: low, seq: 5 } }], new Map([[author, { cid: high, seq: 5 }]])), [])
  })
})
