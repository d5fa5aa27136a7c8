/**
 * Peers ban forgers as beacons do (issue 23, item 2; DESIGN.md §4): an entry whose author
 * signature fails, arriving from a neighbour in an envelope some other key signed, gets the
 * envelope's signer banned, never the neighbour that forwarded it; the ban is kept in the
 * peer's state store and holds after a restart. Real SDK peers on loopback.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { FEED_POST_ACTION, sealEnvelope, signEntry } from '@pharos/protocol/log/index.ts'
import { CID } from 'multiformats/cid'
import { fileStateStore } from '../src/file-state-store.ts'
import { generateKey, signerFor } from '../src/keys.ts'
import { createPharosPeer } from '../src/pharos-peer.ts'
import type { PharosPeer } from '../src/pharos-peer.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { addressOf, startPeer } from './helpers/peers.ts'
import { tempDir } from './helpers/worker.ts'

const contentActive = (peer: PharosPeer): readonly string[] => peer.libp2p.services.overlay.snapshot().content?.active ?? []

describe('a peer fed a forged entry by a neighbour', () => {
  const peers: PharosPeer[] = []
  after(async () => { await Promise.all(peers.map(async (peer) => { await peer.stop() })) })

  it('bans the signer, not the forwarder, and the ban holds after a restart', async () => {
    const stateDir = join(await tempDir(), 'peer-state')
    const victimKey = await generateKey()
    const victim = await startPeer({ privateKey: victimKey, stateStore: fileStateStore(stateDir) })
    peers.push(victim)
    const forwarder = await startPeer({ bootstrap: [addressOf(victim)] })
    peers.push(forwarder)
    await waitFor('the forwarder to be the victim\'s neighbour', () => contentActive(victim).includes(forwarder.peerId.toString()))

    // X signs an entry that claims Y as its author, and the envelope around it; the
    // forwarder passes the payload on unchanged, as Plumtree does.
    const forgerKey = await generateKey()
    const forger = signerFor(forgerKey)
    const claimed = signerFor(await generateKey())
    const content = CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
    const forged = await signEntry({ seq: 0, prev: null, action: FEED_POST_ACTION, timestamp: 1, params: { content } }, { peerId: claimed.peerId, sign: forger.sign })
    const envelope = await sealEnvelope(forged.bytes, forger)
    forwarder.libp2p.services.overlay.broadcast('content', forged.cid.toString(), envelope)

    await waitFor('the forger banned', () => victim.bans().some((ban) => ban.peer === forger.peerId), 10_000)
    const [ban] = victim.bans()
    assert.equal(victim.bans().length, 1, 'only the signer is banned')
    assert.equal(ban?.reason, 'bad-signature')
    assert.match(ban?.detail ?? '', new RegExp(`author ${claimed.peerId}`))
    assert.ok(!victim.bans().some((each) => each.peer === forwarder.peerId.toString() || each.peer === claimed.peerId), 'neither the forwarder nor the claimed author')
    assert.ok(victim.libp2p.getConnections(forwarder.peerId).length > 0, 'the forwarder stays connected')
    const kept = JSON.parse(await readFile(join(stateDir, 'bans.json'), 'utf8')) as Array<{ peer: string }>
    assert.deepEqual(kept.map((each) => each.peer), [forger.peerId])

    // A restart, from the same state store: the ban holds, the forger cannot connect, the forwarder can.
    const port = addressOf(victim).split('/')[4] ?? assert.fail()
    await victim.stop()
    const restarted = await createPharosPeer({ privateKey: victimKey, bootstrap: [], listen: [`/ip4/127.0.0.1/tcp/${port}`], stateStore: fileStateStore(stateDir) })
    peers.push(restarted)
    await restarted.start()
    assert.deepEqual(restarted.bans().map((each) => each.peer), [forger.peerId])
    const forgerPeer = await createPharosPeer({ privateKey: forgerKey, bootstrap: [addressOf(restarted)], timeouts: { dialMs: 2000, joinMs: 3000 } })
    peers.push(forgerPeer)
    await assert.rejects(forgerPeer.start())
    assert.equal(restarted.libp2p.getConnections(forgerPeer.peerId).length, 0, 'the banned signer holds no connection')
    const again = await startPeer({ privateKey: (await generateKey()), bootstrap: [addressOf(restarted)] })
    peers.push(again)
    await waitFor('an unbanned peer to be let in', () => contentActive(restarted).includes(again.peerId.toString()))
  })
})
