import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import {
  challengeProof,
  decodeChallengeRequest,
  decodeChallengeResponse,
  encodeChallengeRequest,
  encodeChallengeResponse,
  judgeChallengeAnswer,
  MAX_CHALLENGE_CIDS,
  openAuditReport,
  signAuditReport
} from '../src/audit/index.ts'
import type { AuditReport } from '../src/audit/index.ts'
import { decodeCanonical, encodeCbor, signStatement } from '../src/log/index.ts'
import { namedKey } from './log-helpers.ts'

const worker = namedKey('audit-worker')
const other = namedKey('audit-other')

async function block (text: string): Promise<{ cid: CID, bytes: Uint8Array }> {
  const bytes = new TextEncoder().encode(text)
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

async function sampleReport (): Promise<AuditReport> {
  const [a, b, c] = await Promise.all([block('a'), block('b'), block('c')])
  return {
    worker: worker.peerId,
    at: 1_700_000_000_000,
    durationMs: 42,
    sampleSize: 3,
    checked: [a.cid, b.cid, c.cid],
    failures: [{ cid: b.cid, reason: 'corrupt' }, { cid: c.cid, reason: 'missing' }],
    repairs: [{ cid: b.cid, outcome: 'repaired', detail: 'fetched' }, { cid: c.cid, outcome: 'failed', detail: 'no peer had it' }]
  }
}

describe('audit reports', () => {
  it('verify with the worker\'s peer ID and give back every field', async () => {
    const report = await sampleReport()
    const opened = await openAuditReport(await signAuditReport(report, worker.signer), worker.peerId)
    assert.ok(opened.ok, opened.ok ? '' : opened.detail)
    assert.deepEqual(opened.report, report)
  })

  it('fail once tampered with, or when expected from another worker', async () => {
    const bytes = await signAuditReport(await sampleReport(), worker.signer)
    const decoded = decodeCanonical(bytes)
    assert.ok(decoded.ok)
    const statement = decoded.value as { body: Record<string, unknown> }
    const tampered = encodeCbor({ ...statement, body: { ...statement.body, failures: [] } })
    const result = await openAuditReport(tampered)
    assert.equal(result.ok ? 'ok' : result.code, 'bad-statement-signature')
    const flipped = new Uint8Array(bytes)
    flipped[flipped.length - 1] = (flipped.at(-1) ?? 0) ^ 1
    const flippedResult = await openAuditReport(flipped)
    assert.equal(flippedResult.ok ? 'ok' : flippedResult.code, 'bad-statement-signature')
    const fromOther = await openAuditReport(bytes, other.peerId)
    assert.equal(fromOther.ok ? 'ok' : fromOther.code, 'bad-signer')
  })

  it('cannot be signed for another worker; a body naming another worker, or missing a field, is refused', async () => {
    await assert.rejects(signAuditReport({ ...await sampleReport(), worker: other.peerId }, worker.signer), RangeError)
    const report = await sampleReport()
    const body = { ...report, worker: other.peerId }
    const result = await openAuditReport(await signStatement('audit', body, worker.signer))
    assert.equal(result.ok ? 'ok' : result.code, 'bad-report')
    const { repairs, ...withoutRepairs } = report
    assert.equal(repairs.length, 2)
    const noRepairs = await openAuditReport(await signStatement('audit', withoutRepairs, worker.signer))
    assert.equal(noRepairs.ok ? 'ok' : noRepairs.code, 'bad-report')
  })
})

describe('storage-proof challenges', () => {
  const nonce = new Uint8Array(32).fill(7)

  it('round-trip requests and answers, and bound them on decode', async () => {
    const { cid } = await block('x')
    const decoded = decodeChallengeRequest(encodeChallengeRequest({ t: 'challenge', nonce, cids: [cid] }))
    assert.ok(decoded.ok)
    assert.ok(decoded.value.cids[0]?.equals(cid))
    const tooMany = encodeCbor({ t: 'challenge', nonce, cids: Array.from({ length: MAX_CHALLENGE_CIDS + 1 }, () => cid) })
    assert.equal(decodeChallengeRequest(tooMany).ok, false)
    assert.equal(decodeChallengeRequest(encodeCbor({ t: 'challenge', nonce: nonce.subarray(1), cids: [cid] })).ok, false)
    assert.equal(decodeChallengeRequest(encodeCbor({ t: 'challenge', nonce, cids: [] })).ok, false)
    assert.equal(decodeChallengeRequest(encodeCbor({ t: 'challenge', nonce, cids: ['x'] })).ok, false)
    assert.equal(decodeChallengeRequest(new Uint8Array([0xff, 0x00])).ok, false)
    assert.equal(decodeChallengeRequest(encodeCbor({ t: 'challenge', nonce, cids: [cid], extra: 1 })).ok, false)
    // An answer must carry exactly one proof (32 bytes or null) per CID asked.
    assert.equal(decodeChallengeResponse(encodeChallengeResponse({ t: 'proofs', proofs: [null] }), 2).ok, false)
    assert.equal(decodeChallengeResponse(encodeCbor({ t: 'proofs', proofs: [new Uint8Array(31)] }), 1).ok, false)
    assert.ok(decodeChallengeResponse(encodeChallengeResponse({ t: 'refused', reason: 'busy' }), 3).ok)
  })

  it('pass when every proof matches our copy, fail on a missing or wrong one, and prove nothing without a copy', async () => {
    const [a, b] = await Promise.all([block('a'), block('b')])
    const ours = new Map([[a.cid.toString(), a.bytes], [b.cid.toString(), b.bytes]])
    const ownCopy = async (cid: CID): Promise<Uint8Array | undefined> => ours.get(cid.toString())
    const request = { nonce, cids: [a.cid, b.cid] }
    const answer = async (proofs: Array<Uint8Array | null>) => {
      const judged = await judgeChallengeAnswer(request, encodeChallengeResponse({ t: 'proofs', proofs }), ownCopy)
      assert.ok(judged.ok)
      return judged.value
    }
    const honest = await answer([await challengeProof(nonce, a.bytes), await challengeProof(nonce, b.bytes)])
    assert.equal(honest.verdict, 'passed')
    const lost = await answer([await challengeProof(nonce, a.bytes), null])
    assert.equal(lost.verdict, 'failed')
    assert.deepEqual(lost.results.map((result) => result.outcome), ['proved', 'missing'])
    // A proof computed under another nonce (a replayed answer) is wrong.
    const replayed = await answer([await challengeProof(new Uint8Array(32), a.bytes), await challengeProof(nonce, b.bytes)])
    assert.deepEqual(replayed.results.map((result) => result.outcome), ['wrong', 'proved'])
    assert.equal(replayed.verdict, 'failed')
    const strangers = await judgeChallengeAnswer({ nonce, cids: [(await block('z')).cid] }, encodeChallengeResponse({ t: 'proofs', proofs: [null] }), ownCopy)
    assert.ok(strangers.ok)
    assert.equal(strangers.value.verdict, 'unverifiable')
    // Our own copy that does not match its CID cannot convict anyone.
    const corruptCopy = await judgeChallengeAnswer({ nonce, cids: [a.cid] }, encodeChallengeResponse({ t: 'proofs', proofs: [null] }), async () => b.bytes)
    assert.ok(corruptCopy.ok)
    assert.equal(corruptCopy.value.verdict, 'unverifiable')
  })
})
