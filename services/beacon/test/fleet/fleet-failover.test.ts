/**
 * A peer's home worker dies (SIGKILL) and the peer keeps publishing (issue 6, faults): it
 * fails over to the next bootstrap beacon, and the next entry it publishes is stored by
 * the fleet, whether it reaches a worker by gossip or by the head re-announce of
 * `waitUntilHeld`. Two worker processes on one Postgres and one Redis; the peers know both.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type pg from 'pg'
import { generateKey } from '@pharos/peer/keys.ts'
import { createPharosPeer } from '@pharos/peer/pharos-peer.ts'
import type { PharosPeer } from '@pharos/peer/pharos-peer.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { adminGet, peersHeldBy, startFleetProcesses, tcpAddress } from '../helpers/fleet-processes.ts'
import { waitForValue } from '@pharos/testing/wait.ts'
import { stopWorker } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'

const ADMIN = 'failover-test-admin-token-0123456789'
const PEERS = 4

describe('a peer whose home worker is killed', { timeout: 180_000 }, () => {
  const workers: WorkerProcess[] = []
  const peers: PharosPeer[] = []
  let db: pg.Pool

  before(async () => {
    const keys = await Promise.all(Array.from({ length: PEERS }, async () => await generateKey()))
    const fleet = await startFleetProcesses({
      workers: 2,
      databaseUrl: await createTestDatabase('fleet_failover'),
      adminToken: ADMIN,
      accounts: keys.map((key) => peerIdFromPrivateKey(key).toString())
    })
    workers.push(...fleet.workers)
    db = fleet.db
    const [home, sibling] = workers as [WorkerProcess, WorkerProcess]
    // Every peer lives on the first worker and lists the second after it.
    // The first one listens, so it has an address the fleet can dial back.
    for (const [i, privateKey] of keys.entries()) {
      const listen = i === 0 ? { listen: ['/ip4/127.0.0.1/tcp/0'] } : {}
      const peer = await createPharosPeer({ privateKey, bootstrap: [tcpAddress(home), tcpAddress(sibling)], beaconConnections: 1, networkSize: PEERS, ...listen })
      await peer.start()
      peers.push(peer)
    }
  })

  after(async () => {
    await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
    await Promise.allSettled(workers.map(async (worker) => { await stopWorker(worker) }))
    await db?.end()
  })

  it('lists in the fleet view only addresses a worker can dial: listen addresses, never a source port', async () => {
    const [home] = workers as [WorkerProcess, WorkerProcess]
    const listening = peers[0] as PharosPeer
    const listenAddrs = listening.libp2p.getMultiaddrs().map((addr) => addr.toString().replace(/\/p2p\/.*$/, ''))
    assert.ok(listenAddrs.length > 0)
    // Views are flushed once a heartbeat: wait for every peer, and for the listener's addresses.
    const view = await waitForValue('the home worker to flush its view of every peer, with the listener\'s addresses', 10_000, async () => {
      const { body } = await adminGet<{ peers: Array<{ peerId: string, workerPeerId: string, addrs: string[] }> }>(home, '/v1/peers?scope=fleet&limit=100', ADMIN)
      const mine = body.peers.filter((entry) => entry.workerPeerId === home.peerId)
      const everyPeer = peers.every((peer) => mine.some((entry) => entry.peerId === peer.peerId.toString()))
      return everyPeer && mine.find((entry) => entry.peerId === listening.peerId.toString())?.addrs.length === listenAddrs.length ? mine : undefined
    })
    for (const peer of peers) {
      const entry = view.find((candidate) => candidate.peerId === peer.peerId.toString())
      assert.ok(entry !== undefined, `${peer.peerId.toString()} is in its home worker's view`)
      assert.deepEqual(entry.addrs, peer === listening ? listenAddrs : [], 'an inbound connection\'s source port is not an address')
    }
  })

  it('moves to the next bootstrap beacon and gets its next entries stored', async () => {
    const [home, sibling] = workers as [WorkerProcess, WorkerProcess]
    const publisher = peers[0] as PharosPeer
    const before = await publisher.publishPost({ text: 'before the kill' })
    await publisher.waitUntilHeld([before.cid], { state: 'stored', timeoutMs: 30_000 })

    home.child.kill('SIGKILL')
    await home.exited
    await waitForValue('every peer to be held by the surviving worker', 30_000, async () => {
      const held = await peersHeldBy(sibling, ADMIN)
      return peers.every((peer) => held.has(peer.peerId.toString()))
    })
    for (let i = 0; i < 3; i++) {
      const entry = await publisher.publishPost({ text: `after the kill #${i}` })
      await publisher.waitUntilHeld([entry.cid], { state: 'stored', timeoutMs: 30_000 })
    }
    const { rows } = await db.query<{ entries: number }>('SELECT count(*)::int AS entries FROM log_entries')
    assert.equal(rows[0]?.entries, 4, 'the entry before the kill and the three after it, each stored once')
  })
})
