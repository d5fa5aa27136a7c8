/**
 * What a peer that merely connects (no registered account, not a fleet worker) can make a
 * worker keep, against one worker started in-process on loopback with real js-libp2p peers:
 * its drain notices change nothing (issue 17, item 3), its peer record is forgotten once it
 * hangs up (item 3: the peer store expires entries only when read), and it never enters the
 * fleet peer view that sibling workers seed their overlays from (item 12); none of the
 * addresses it claims enters the peer store, even while it is connected.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { encodeDrainNotice, MAX_ADDRS_PER_PEER, MAX_LOOKUP_PEERS } from '@pharos/net/overlay/driver-frames.ts'
import type { DrainNotice } from '@pharos/net/overlay/overlay-driver.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const ADMIN_TOKEN = 'test-admin-token-0123456789'

/** The most a notice can carry: 32 siblings × 8 addresses, aimed at what a worker must never dial. */
async function hostileNotice (): Promise<Uint8Array> {
  const targets = ['/ip4/169.254.169.254/tcp/80', '/dns4/postgres/tcp/5432', '/ip4/10.0.0.1/tcp/6379', '/ip4/127.0.0.1/tcp/22']
  const records = []
  for (let i = 0; i < MAX_LOOKUP_PEERS; i++) {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    records.push({ peer, addrs: Array.from({ length: MAX_ADDRS_PER_PEER }, (_, j) => multiaddr(targets[j % targets.length] ?? '').bytes) })
  }
  return encodeDrainNotice(records)
}

describe('a worker and a peer that is neither registered nor a fleet worker', () => {
  let worker: Worker
  let tcpAddr: string
  const peers: ClientPeer[] = []

  const peer = async (): Promise<ClientPeer> => {
    const created = await createClientPeer()
    peers.push(created)
    return created
  }
  const metricsText = async (): Promise<string> => (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
  const peerStoreSize = async (): Promise<number> => (await worker.node.peerStore.all()).length
  const fleetView = async (): Promise<string[]> => (await worker.fleet.peerViews.fleetView({ limit: 1000 })).peers.map((entry) => entry.peerId)

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({ PHAROS_ADMIN_TOKENS: ADMIN_TOKEN })), createLogger('silent'))
    tcpAddr = worker.node.getMultiaddrs().map(String).find((addr) => addr.startsWith('/ip4/127.0.0.1/') && !addr.includes('/ws')) ?? assert.fail('no TCP address')
  })

  after(async () => {
    await Promise.all(peers.map(async (p) => { await p.stop() }))
    await worker.stop()
  })

  it('takes no drain notice from it: the peer store, the listeners and the views are untouched, and the refusal is counted', async () => {
    const stranger = await peer()
    await stranger.dial(multiaddr(tcpAddr))
    await waitFor('the worker to have identified the stranger', async () => (await worker.node.peerStore.has(stranger.peerId)), 5000)
    const notices: DrainNotice[] = []
    worker.node.services.overlay.onDrain((notice) => { notices.push(notice) })
    const before = await peerStoreSize()

    const notice = await hostileNotice()
    for (let i = 0; i < 20; i++) {
      try {
        const stream = await stranger.dialProtocol(multiaddr(tcpAddr), '/pharos/drain/1.0.0')
        await lpStream(stream).write(notice)
        await stream.close()
      } catch {
        // the worker resets the stream: what matters is what it kept
      }
    }
    await waitFor('every notice to be refused', () => worker.node.services.overlay.driverCounters().drainNoticesRefused === 20, 10_000,
      () => JSON.stringify(worker.node.services.overlay.driverCounters()))

    assert.equal(await peerStoreSize(), before, 'no address of a notice entered the peer store')
    assert.equal(notices.length, 0, 'no drain listener was called')
    assert.equal(worker.node.services.overlay.driverCounters().drainNoticesReceived, 0)
    assert.equal(worker.node.services.overlay.isDeparting(stranger.peerId.toString()), false, 'the sender is not even taken as leaving')
    assert.match(await metricsText(), /^pharos_overlay_driver_events_total\{event="drain_notice_refused"\} 20$/m)
  })

  it('forgets its peer record once it hangs up, but keeps a registered peer\'s', async () => {
    const stranger = await peer()
    const member = await peer()
    await worker.accounts.add(member.peerId.toString())
    for (const client of [stranger, member]) {
      await client.dial(multiaddr(tcpAddr))
      await waitFor('the worker to have identified the peer', async () => (await worker.node.peerStore.has(client.peerId)), 5000)
    }
    for (const client of [stranger, member]) await client.hangUp(worker.node.peerId)
    await waitFor('the worker to see both hang up', () => worker.node.getConnections(stranger.peerId).length + worker.node.getConnections(member.peerId).length === 0, 5000)
    await waitFor('the stranger\'s record to be deleted', async () => !(await worker.node.peerStore.has(stranger.peerId)), 5000)
    assert.equal(await worker.node.peerStore.has(member.peerId), true, 'a registered peer\'s addresses are kept for the overlay to dial')
  })

  it('is never recorded in the fleet peer view siblings seed their overlays from; a registered peer is', async () => {
    const stranger = await createClientPeer({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    const member = await createClientPeer({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    peers.push(stranger, member)
    await worker.accounts.add(member.peerId.toString())
    const identified = identifiedBy(worker, stranger.peerId.toString())
    for (const client of [stranger, member]) await client.dial(multiaddr(tcpAddr))
    await waitFor('the member to be in the view with its listen address', async () => {
      const entry = (await worker.fleet.peerViews.fleetView({ limit: 1000 })).peers.find((candidate) => candidate.peerId === member.peerId.toString())
      return entry !== undefined && entry.addrs.length > 0
    }, 5000)
    await identified
    assert.equal((await fleetView()).includes(stranger.peerId.toString()), false, 'the stranger is not in the view')
    // The view is what siblings read (seedCandidates, locate): the stranger's claimed addresses are nowhere in it.
    assert.equal(await worker.fleet.peerViews.locate(stranger.peerId.toString()), undefined, 'the fleet cannot locate it at its claimed addresses')
    assert.ok(await worker.fleet.peerViews.locate(member.peerId.toString()), 'the registered peer is located')
  })

  it('keeps none of its claimed addresses in the peer store even while it is connected; a registered peer\'s are kept', async () => {
    const stranger = await createClientPeer({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    const member = await createClientPeer({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    peers.push(stranger, member)
    await worker.accounts.add(member.peerId.toString())
    const identified = Promise.all([stranger, member].map(async (client) => { await identifiedBy(worker, client.peerId.toString()) }))
    for (const client of [stranger, member]) await client.dial(multiaddr(tcpAddr))
    await identified
    const addressesOf = async (client: ClientPeer): Promise<string[]> =>
      await worker.node.peerStore.get(client.peerId).then((record) => record.addresses.map((address) => address.multiaddr.toString()), () => [])
    assert.ok(stranger.getMultiaddrs().length > 0, 'the stranger listens, so identify told the worker its addresses')
    assert.deepEqual(await addressesOf(stranger), [], 'none of the stranger\'s addresses was kept')
    assert.ok((await addressesOf(member)).length > 0, 'the member\'s listen addresses are kept for the overlay to dial')
    assert.equal(worker.node.getConnections(stranger.peerId).length > 0, true, 'the stranger is still connected')
  })
})

/** Resolves once `worker` has run identify with `peer` (its listen addresses have reached the peer store's filter). */
async function identifiedBy (worker: Worker, peer: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const listener = ({ detail }: CustomEvent<{ peerId: { toString: () => string } }>): void => {
      if (detail.peerId.toString() !== peer) return
      worker.node.removeEventListener('peer:identify', listener)
      resolve()
    }
    worker.node.addEventListener('peer:identify', listener)
  })
}
