import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeCanonical, encodeCbor, openStatement, signStatement } from '../src/log/index.ts'
import { namedKey } from './log-helpers.ts'

const worker = namedKey('statement-worker')
const other = namedKey('statement-other')

describe('signed statements', () => {
  it('verify with nothing but the signer\'s peer ID', async () => {
    const bytes = await signStatement('receipt', { author: other.peerId, seq: 4 }, worker.signer)
    const opened = await openStatement(bytes, { kind: 'receipt', signer: worker.peerId })
    assert.ok(opened.ok)
    assert.equal(opened.value.signer, worker.peerId)
    assert.deepEqual(opened.value.body, { author: other.peerId, seq: 4 })
  })

  it('fail when the body, the kind or the signer was changed', async () => {
    const bytes = await signStatement('audit', { checked: 10, failures: 0 }, worker.signer)
    const decoded = decodeCanonical(bytes)
    assert.ok(decoded.ok)
    const original = decoded.value as Record<string, unknown>
    const tamper = async (change: Record<string, unknown>): Promise<string> => {
      const result = await openStatement(encodeCbor({ ...original, ...change }))
      return result.ok ? 'ok' : result.code
    }
    assert.equal(await tamper({ body: { checked: 10, failures: 1 } }), 'bad-statement-signature')
    assert.equal(await tamper({ kind: 'receipt' }), 'bad-statement-signature')
    assert.equal(await tamper({ signer: other.peerId }), 'bad-statement-signature')
    assert.equal(await tamper({ signer: 'not-a-peer-id' }), 'bad-signer')
    assert.equal(await tamper({ v: 2 }), 'bad-shape')
  })

  it('are refused as another kind or from another signer than expected', async () => {
    const bytes = await signStatement('audit', { checked: 1 }, worker.signer)
    const asReceipt = await openStatement(bytes, { kind: 'receipt' })
    assert.equal(asReceipt.ok ? 'ok' : asReceipt.code, 'wrong-kind')
    const fromOther = await openStatement(bytes, { signer: other.peerId })
    assert.equal(fromOther.ok ? 'ok' : fromOther.code, 'bad-signer')
  })

  it('refuse garbage and kinds outside the pattern', async () => {
    const garbage = await openStatement(Uint8Array.of(0xff, 0x00))
    assert.equal(garbage.ok, false)
    await assert.rejects(signStatement('Receipt!', {}, worker.signer), RangeError)
  })
})
