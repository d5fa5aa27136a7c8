/**
 * `PharosPeer.receipt` against a scripted beacon that signs with its own key: a receipt is
 * returned only when it is signed by the beacon that was asked, of the kind asked for, and
 * about exactly that author, head or root; a lying beacon's receipt is a
 * ReceiptVerificationError, a beacon that holds nothing says so (NotHeldError), and a beacon
 * that predates receipts fails the call without taking the peer down.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { CID } from 'multiformats/cid'
import { signLogReceipt, signPinReceipt } from '@pharos/protocol/log/index.ts'
import type { ReceiptSubject, SyncResponse } from '@pharos/protocol/log/index.ts'
import { NotHeldError, ReceiptVerificationError } from '../src/errors.ts'
import { generateKey, signerFor } from '../src/keys.ts'
import { createPharosPeer } from '../src/pharos-peer.ts'
import type { PharosPeer } from '../src/pharos-peer.ts'
import { startFakeBeacon } from './helpers/fake-beacon.ts'

const HEAD = CID.parse('bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')
const OTHER_HEAD = CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
const ROOT = CID.parse('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')

const running: Array<{ stop: () => void | Promise<void> }> = []
after(async () => { await Promise.all(running.map(async (node) => { await node.stop() })) })

type Answer = (subject: ReceiptSubject, beacon: ReturnType<typeof signerFor>) => Promise<SyncResponse> | SyncResponse

/** A started peer whose only beacon answers `receipt` requests with `answer` (and joins it to the overlay). */
async function peerWith (answer: Answer): Promise<{ peer: PharosPeer, beacon: string }> {
  const key = await generateKeyPair('Ed25519')
  const signer = signerFor(key)
  const fake = await startFakeBeacon({
    sync: async (request) => {
      if (request.t === 'receipt') return await answer(request, signer)
      if (request.t === 'heads') return { t: 'heads', heads: [] }
      return { t: 'error', code: 'bad-request', message: 'unsupported' }
    }
  }, 'pharos', key)
  running.push(fake)
  const peer = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [fake.address], timeouts: { requestMs: 2000, joinMs: 5000 } })
  running.push(peer)
  await peer.start()
  return { peer, beacon: signer.peerId }
}

const refusedWith = (code: string) => (err: unknown): boolean => err instanceof ReceiptVerificationError && err.code === code

const author = signerFor(await generateKey()).peerId

describe('receipts from a beacon', () => {
  it('returns a receipt signed by the beacon asked, about what was asked', async () => {
    const { peer, beacon } = await peerWith(async (subject, signer) => 'cid' in subject
      ? { t: 'receipt', statement: await signPinReceipt({ cid: subject.cid, blocks: 4, bytes: 4096, verifiedAt: 7 }, signer) }
      : { t: 'receipt', statement: await signLogReceipt({ author: subject.author, head: subject.head ?? HEAD, seq: 9, verifiedAt: 7 }, signer) })
    const log = await peer.receipt(author)
    assert.deepEqual([log.signer, log.author, log.head.toString(), log.seq], [beacon, author, HEAD.toString(), 9])
    assert.equal((await peer.receipt(author, { head: OTHER_HEAD })).head.toString(), OTHER_HEAD.toString())
    const pin = await peer.receipt(ROOT)
    assert.deepEqual([pin.signer, pin.cid.toString(), pin.blocks, pin.bytes], [beacon, ROOT.toString(), 4, 4096])
  })

  it('refuses a receipt signed by another key than the beacon\'s', async () => {
    const stranger = signerFor(await generateKey())
    const { peer } = await peerWith(async () => ({ t: 'receipt', statement: await signLogReceipt({ author, head: HEAD, seq: 1, verifiedAt: 1 }, stranger) }))
    await assert.rejects(peer.receipt(author), refusedWith('bad-signer'))
  })

  it('refuses a receipt for another author, another head, another root, or of another kind', async () => {
    const other = signerFor(await generateKey()).peerId
    const { peer } = await peerWith(async (subject, signer) => 'cid' in subject
      ? { t: 'receipt', statement: await signPinReceipt({ cid: HEAD, blocks: 1, bytes: 1, verifiedAt: 1 }, signer) }
      : subject.head !== undefined
        ? { t: 'receipt', statement: await signLogReceipt({ author: subject.author, head: HEAD, seq: 1, verifiedAt: 1 }, signer) }
        : subject.author === author
          ? { t: 'receipt', statement: await signLogReceipt({ author: other, head: HEAD, seq: 1, verifiedAt: 1 }, signer) }
          : { t: 'receipt', statement: await signPinReceipt({ cid: ROOT, blocks: 1, bytes: 1, verifiedAt: 1 }, signer) })
    await assert.rejects(peer.receipt(author), refusedWith('wrong-subject'))
    await assert.rejects(peer.receipt(author, { head: OTHER_HEAD }), refusedWith('wrong-subject'))
    await assert.rejects(peer.receipt(ROOT), refusedWith('wrong-subject'))
    await assert.rejects(peer.receipt(other), refusedWith('wrong-kind'))
  })

  it('refuses a receipt whose signature does not hold', async () => {
    const { peer } = await peerWith(async (_subject, signer) => {
      const statement = await signLogReceipt({ author, head: HEAD, seq: 1, verifiedAt: 1 }, signer)
      // A byte of the signature (it follows the "sig" key) flipped.
      const at = Buffer.from(statement).indexOf(Buffer.from('sig')) + 6
      const tampered = Uint8Array.from(statement)
      tampered[at] = (tampered[at] ?? 0) ^ 0x01
      return { t: 'receipt', statement: tampered }
    })
    await assert.rejects(peer.receipt(author), refusedWith('bad-statement-signature'))
  })

  it('says why when the beacon holds nothing to vouch for', async () => {
    const { peer } = await peerWith(() => ({ t: 'not-held', reason: 'incomplete', message: 'a gap below seq 3' }))
    await assert.rejects(peer.receipt(author), (err: unknown) => err instanceof NotHeldError && err.reason === 'incomplete' && err.message.includes('a gap below seq 3'))
  })

  it('fails the call, not the peer, against a beacon that predates receipts', async () => {
    // An older beacon's decoder does not know the request and aborts the stream.
    const { peer } = await peerWith(() => { throw new Error('unknown request type') })
    await assert.rejects(peer.receipt(author), (err: unknown) => err instanceof Error && !(err instanceof ReceiptVerificationError))
    assert.equal(peer.libp2p.status, 'started')
  })
})
