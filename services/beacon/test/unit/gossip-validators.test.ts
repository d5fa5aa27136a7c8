/**
 * What each topic's validator forwards (`accept`), blames on the neighbour that sent it
 * (`reject`), or drops without blame (`ignore`): the checks the peer SDK and the beacon share.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { encodeCbor, sealEnvelope, signEntry, signHeadRequest, HEAD_REQUEST_LIMITS } from '@pharos/protocol/log/index.ts'
import { signerFor } from '@pharos/peer/keys.ts'
import { AcceptedPayloads, contentValidator, syncValidator } from '@pharos/net/overlay/gossip-validators.ts'
import type { EntryBlock } from '@pharos/protocol/log/index.ts'
import type { GossipValidator } from '@pharos/net/overlay/overlay-driver.ts'

const judge = async (validator: GossipValidator, topic: string, payload: Uint8Array): Promise<string> =>
  await validator({ topic, messageId: 'id', payload, from: 'neighbour', origin: 'origin' }, AbortSignal.timeout(5000))

describe('gossip validators', () => {
  it('content: a signed entry of a registered author is forwarded; junk and forgeries are blamed; an unregistered author is dropped unblamed', async () => {
    const author = signerFor(await generateKeyPair('Ed25519'))
    const other = signerFor(await generateKeyPair('Ed25519'))
    const entry = await signEntry({ seq: 0, prev: null, action: 'set-profile', timestamp: 1_700_000_000_000, params: { name: 'a' } }, author)
    const payload = await sealEnvelope(entry.bytes, author)
    const registry = contentValidator((peer) => peer === author.peerId)

    assert.equal(await judge(registry, 'content', payload), 'accept')
    // What it accepted is kept for the delivery of this very payload, once.
    const accepted = new AcceptedPayloads<EntryBlock>(2)
    assert.equal(await judge(contentValidator(undefined, accepted), 'content', payload), 'accept')
    assert.equal(accepted.take('id', new Uint8Array(payload)), undefined, 'another payload under the ID is checked again')
    assert.equal(await judge(contentValidator(undefined, accepted), 'content', payload), 'accept')
    assert.ok(accepted.take('id', payload)?.cid.equals(entry.cid))
    assert.equal(accepted.take('id', payload), undefined)
    assert.equal(await judge(contentValidator(() => false, accepted), 'content', payload), 'ignore')
    assert.equal(accepted.take('id', payload), undefined, 'nothing is kept of what it did not accept')
    assert.equal(await judge(contentValidator(undefined), 'content', payload), 'accept', 'without a registry, signatures decide')
    assert.equal(await judge(contentValidator(() => false), 'content', payload), 'ignore', 'an unregistered author: not forwarded, nobody blamed')
    assert.equal(await judge(registry, 'content', encodeCbor({ entry: new Uint8Array(3), publisher: 'x', sig: new Uint8Array(64) })), 'reject')
    // The author field names `author`, but `other` signed it.
    const forged = await signEntry({ seq: 0, prev: null, action: 'set-profile', timestamp: 1_700_000_000_000, params: { name: 'b' } }, { peerId: author.peerId, sign: other.sign })
    assert.equal(await judge(registry, 'content', await sealEnvelope(forged.bytes, other)), 'reject')
  })

  it('sync: a fresh HEAD request its asker signed is forwarded; a stale one dropped unblamed; a bad one blamed', async () => {
    const asker = signerFor(await generateKeyPair('Ed25519'))
    const author = signerFor(await generateKeyPair('Ed25519'))
    const wants = [{ author: author.peerId }]
    const validator = syncValidator((peer) => peer === asker.peerId)

    assert.equal(await judge(validator, 'sync', await signHeadRequest(wants, Date.now(), asker)), 'accept')
    assert.equal(await judge(validator, 'sync', await signHeadRequest(wants, Date.now() - HEAD_REQUEST_LIMITS.maxAgeMs - 1000, asker)), 'ignore',
      'it went stale on its way: the neighbour that passed it on checked it while it was fresh')
    assert.equal(await judge(syncValidator(() => false), 'sync', await signHeadRequest(wants, Date.now(), asker)), 'ignore', 'an unregistered asker')
    const stolen = await signHeadRequest(wants, Date.now(), { peerId: asker.peerId, sign: author.sign })
    assert.equal(await judge(validator, 'sync', stolen), 'reject', 'signed by someone else than the asker it names')
    assert.equal(await judge(validator, 'sync', encodeCbor({ v: 1, nonsense: true })), 'reject')
  })
})
