import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { decodeCanonical, encodeCbor, openLogReceipt, openPinReceipt, signLogReceipt, signPinReceipt, signStatement } from '../src/log/index.ts'
import { namedKey, sha256, utf8 } from './log-helpers.ts'

const worker = namedKey('receipt-worker')
const other = namedKey('receipt-other')
const author = namedKey('receipt-author')
const head = CID.createV1(0x71, Digest.create(0x12, sha256(utf8('head'))))
const otherHead = CID.createV1(0x71, Digest.create(0x12, sha256(utf8('other head'))))
const dagPbRoot = CID.createV1(0x70, Digest.create(0x12, sha256(utf8('root'))))

const codeOf = (result: { ok: boolean, code?: string }): string => result.ok ? 'ok' : result.code ?? '?'

/** The statement's fields, to re-encode with something changed. */
function fieldsOf (bytes: Uint8Array): Record<string, unknown> {
  const decoded = decodeCanonical(bytes)
  assert.ok(decoded.ok)
  return decoded.value as Record<string, unknown>
}

describe('receipts', () => {
  it('a log receipt verifies with the worker\'s peer ID and says what was signed', async () => {
    const bytes = await signLogReceipt({ author: author.peerId, head, seq: 7, verifiedAt: 1_700_000_000_000 }, worker.signer)
    const opened = await openLogReceipt(bytes, { signer: worker.peerId, author: author.peerId, head })
    assert.ok(opened.ok)
    assert.deepEqual({ ...opened.value, head: opened.value.head.toString() }, {
      kind: 'log-receipt', signer: worker.peerId, statement: bytes, author: author.peerId, head: head.toString(), seq: 7, verifiedAt: 1_700_000_000_000
    })
  })

  it('a pin receipt names its root as CIDv1, and a CIDv0 expectation matches it', async () => {
    const v0 = dagPbRoot.toV0()
    const bytes = await signPinReceipt({ cid: v0, blocks: 3, bytes: 1234, verifiedAt: 5 }, worker.signer)
    const opened = await openPinReceipt(bytes, { signer: worker.peerId, cid: v0 })
    assert.ok(opened.ok)
    assert.equal(opened.value.cid.toString(), dagPbRoot.toString())
    assert.deepEqual([opened.value.blocks, opened.value.bytes, opened.value.verifiedAt], [3, 1234, 5])
  })

  it('a tampered receipt fails: body, signer, kind or signature changed', async () => {
    const bytes = await signLogReceipt({ author: author.peerId, head, seq: 7, verifiedAt: 1 }, worker.signer)
    const original = fieldsOf(bytes)
    const body = original.body as Record<string, unknown>
    const tamper = async (change: Record<string, unknown>): Promise<string> => codeOf(await openLogReceipt(encodeCbor({ ...original, ...change })))
    assert.equal(await tamper({ body: { ...body, seq: 8 } }), 'bad-statement-signature')
    assert.equal(await tamper({ body: { ...body, head: otherHead } }), 'bad-statement-signature')
    assert.equal(await tamper({ signer: other.peerId }), 'bad-statement-signature')
    const sig = Uint8Array.from(original.sig as Uint8Array)
    sig[0] = (sig[0] ?? 0) ^ 1
    assert.equal(await tamper({ sig }), 'bad-statement-signature')
    assert.equal(await tamper({ kind: 'pin-receipt' }), 'wrong-kind')
    const flipped = Uint8Array.from(bytes)
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 0xff
    assert.notEqual(codeOf(await openLogReceipt(flipped)), 'ok')
  })

  it('is refused from another signer than the one asked, or about another subject', async () => {
    const bytes = await signLogReceipt({ author: author.peerId, head, seq: 7, verifiedAt: 1 }, worker.signer)
    assert.equal(codeOf(await openLogReceipt(bytes, { signer: other.peerId })), 'bad-signer')
    assert.equal(codeOf(await openLogReceipt(bytes, { author: other.peerId })), 'wrong-subject')
    assert.equal(codeOf(await openLogReceipt(bytes, { head: otherHead })), 'wrong-subject')
    const pin = await signPinReceipt({ cid: dagPbRoot, blocks: 1, bytes: 1, verifiedAt: 1 }, worker.signer)
    assert.equal(codeOf(await openPinReceipt(pin, { cid: head })), 'wrong-subject')
  })

  it('one kind never passes as the other', async () => {
    const log = await signLogReceipt({ author: author.peerId, head, seq: 0, verifiedAt: 1 }, worker.signer)
    const pin = await signPinReceipt({ cid: head, blocks: 1, bytes: 1, verifiedAt: 1 }, worker.signer)
    assert.equal(codeOf(await openPinReceipt(log)), 'wrong-kind')
    assert.equal(codeOf(await openLogReceipt(pin)), 'wrong-kind')
  })

  it('a validly signed statement of the right kind with a wrong body is bad-body', async () => {
    const cases: Array<Record<string, unknown>> = [
      { author: author.peerId, head, seq: 1 },
      { author: author.peerId, head, seq: -1, verifiedAt: 1 },
      { author: 'not a peer', head, seq: 1, verifiedAt: 1 },
      { author: author.peerId, head: head.toString(), seq: 1, verifiedAt: 1 },
      { author: author.peerId, head, seq: 1, verifiedAt: 1, extra: true }
    ]
    for (const body of cases) assert.equal(codeOf(await openLogReceipt(await signStatement('log-receipt', body, worker.signer))), 'bad-body', JSON.stringify(Object.keys(body)))
    const v0Body = await signStatement('pin-receipt', { cid: dagPbRoot.toV0(), blocks: 1, bytes: 1, verifiedAt: 1 }, worker.signer)
    assert.equal(codeOf(await openPinReceipt(v0Body)), 'bad-body', 'a pin receipt names its root as CIDv1')
  })

  it('a pin receipt says what it covers: the whole DAG, or an entry pin (the entry and its content, not prev)', async () => {
    const whole = await signPinReceipt({ cid: head, blocks: 2, bytes: 10, verifiedAt: 1 }, worker.signer)
    const entry = await signPinReceipt({ cid: head, scope: 'entry', blocks: 2, bytes: 10, verifiedAt: 1 }, worker.signer)
    // A whole-DAG receipt is encoded as before scopes existed: no scope key.
    assert.deepEqual(Object.keys((fieldsOf(whole).body as Record<string, unknown>)).sort(), ['blocks', 'bytes', 'cid', 'verifiedAt'])
    assert.deepEqual(whole, await signPinReceipt({ cid: head, scope: 'dag', blocks: 2, bytes: 10, verifiedAt: 1 }, worker.signer))
    assert.equal((fieldsOf(entry).body as Record<string, unknown>).scope, 'entry')

    const openedWhole = await openPinReceipt(whole, { cid: head })
    const openedEntry = await openPinReceipt(entry, { cid: head })
    assert.ok(openedWhole.ok && openedEntry.ok)
    assert.deepEqual([openedWhole.value.scope, openedEntry.value.scope], ['dag', 'entry'])
    // A caller that needs the whole DAG does not take an entry pin's receipt for it.
    assert.equal(codeOf(await openPinReceipt(entry, { cid: head, scope: 'dag' })), 'wrong-scope')
    assert.equal(codeOf(await openPinReceipt(whole, { cid: head, scope: 'entry' })), 'wrong-scope')
    assert.equal(codeOf(await openPinReceipt(entry, { cid: head, scope: 'entry' })), 'ok')
    // One encoding per claim: "dag" spelled out, or a scope nobody defined, is not a receipt.
    for (const scope of ['dag', 'everything', 1]) {
      const body = await signStatement('pin-receipt', { cid: head, blocks: 1, bytes: 1, verifiedAt: 1, scope }, worker.signer)
      assert.equal(codeOf(await openPinReceipt(body)), 'bad-body', JSON.stringify(scope))
    }
  })
})
