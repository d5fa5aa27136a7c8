/**
 * Graceful drain (issue 9, part 4): three worker processes on one Postgres and one Redis,
 * SDK peers that each know only their home worker. SIGTERM one worker: it tells its peers
 * which sibling workers to move to, they move, and it exits once they have left. Then the
 * next broadcasts reach every peer by gossip (the content topic's overlay delivery, not a
 * sync), the moved peers included.
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
import { waitFor, waitForValue } from '@pharos/testing/wait.ts'
import { stopWorker } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'

const ADMIN = 'drain-test-admin-token-0123456789'
const PEERS_PER_WORKER = 3
/**
 * Accounts registered besides the test's peers, so N (the account count) sizes active views
 * as in a real network: floor(log2 N) + 1 = 12 slots hold a worker's siblings, its own peers
 * and the ones that move to it. With N = 9 (4 slots), workers would evict peers that can
 * reach no one else (test peers do not listen), and the test would measure that churn.
 */
const OTHER_ACCOUNTS = 2048
const NETWORK_SIZE = OTHER_ACCOUNTS + 3 * PEERS_PER_WORKER

describe('a worker drained with SIGTERM hands its peers to its siblings', { timeout: 240_000 }, () => {
  const workers: WorkerProcess[] = []
  /** peers[w] live on workers[w] and know only it. */
  const peers: PharosPeer[][] = []
  /** Per peer ID: message IDs it got on the content topic by gossip. */
  const gossiped = new Map<string, Set<string>>()
  let db: pg.Pool

  before(async () => {
    const keys = await Promise.all(Array.from({ length: 3 * PEERS_PER_WORKER }, async () => await generateKey()))
    const others = await Promise.all(Array.from({ length: OTHER_ACCOUNTS }, async () => peerIdFromPrivateKey(await generateKey()).toString()))
    const fleet = await startFleetProcesses({
      workers: 3,
      databaseUrl: await createTestDatabase('fleet_drain'),
      adminToken: ADMIN,
      accounts: [...keys.map((key) => peerIdFromPrivateKey(key).toString()), ...others]
    })
    workers.push(...fleet.workers)
    db = fleet.db
    // Peer i lives on worker i / PEERS_PER_WORKER and knows no other beacon.
    for (let w = 0; w < 3; w++) {
      peers.push(await Promise.all(keys.slice(w * PEERS_PER_WORKER, (w + 1) * PEERS_PER_WORKER).map(async (privateKey) =>
        await createPharosPeer({ privateKey, bootstrap: [tcpAddress(workers[w] as WorkerProcess)], networkSize: NETWORK_SIZE }))))
    }
    const authors = peers.flat().map((peer) => peer.peerId.toString())
    for (const peer of peers.flat()) {
      await peer.start()
      peer.follow(authors)
      const got = new Set<string>()
      gossiped.set(peer.peerId.toString(), got)
      peer.libp2p.services.overlay.onDeliver((delivery) => { if (delivery.topic === 'content') got.add(delivery.messageId) })
    }
    // Drain needs live, ready siblings in membership.
    await waitFor('every worker to list three ready workers', async () => {
      const lists = await Promise.all(workers.map(async (worker) => (await adminGet<{ workers: Array<{ ready: boolean }> }>(worker, '/v1/workers', ADMIN)).body))
      return lists.every((list) => list.workers.length === 3 && list.workers.every((entry) => entry.ready))
    }, 20_000)
  })

  after(async () => {
    await Promise.allSettled(peers.flat().map(async (peer) => { await peer.stop() }))
    await Promise.allSettled(workers.map(async (worker) => { await stopWorker(worker) }))
    await db?.end()
  })

  it('moves every peer of the drained worker to the others, then loses no broadcast', async () => {
    const [first, second, drained] = workers as [WorkerProcess, WorkerProcess, WorkerProcess]
    const moving = (peers[2] ?? []).map((peer) => peer.peerId.toString())
    const held = await peersHeldBy(drained, ADMIN)
    for (const id of moving) assert.ok(held.has(id), `peer ${id} is held by the worker to be drained`)

    drained.child.kill('SIGTERM')
    const exit = await drained.exited
    assert.deepEqual(exit, { code: 0, signal: null }, `the drained worker exits cleanly; stderr: ${drained.stderr()}`)
    const summary = drained.lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((record) => record.msg === 'drain: peers moved to sibling workers')
    assert.ok(summary !== undefined, 'the drain logged its summary')
    // Its own peers, and any peer of a sibling the overlay linked to it, are told.
    assert.ok(Number(summary.told) >= PEERS_PER_WORKER, `every peer of the drained worker was told where to go: ${JSON.stringify(summary)}`)
    assert.equal(summary.moved, summary.told, `and every one left before the deadline (none dialled it again): ${JSON.stringify(summary)}`)
    console.log(`# drain: ${String(summary.told)} peers told, ${String(summary.moved)} moved in ${String(summary.ms)} ms`)

    // Every moved peer is attached to a remaining worker.
    const remaining = await waitForValue('the moved peers to be listed by the remaining workers', 10_000, async () => {
      const [a, b] = await Promise.all([peersHeldBy(first, ADMIN), peersHeldBy(second, ADMIN)])
      return moving.every((id) => a.has(id) || b.has(id)) ? { a, b } : undefined
    })
    for (const id of moving) assert.ok(remaining.a.has(id) || remaining.b.has(id), `${id} is attached elsewhere`)
    for (const peer of peers[2] ?? []) {
      const active = peer.libp2p.services.overlay.snapshot().content?.active ?? []
      assert.ok(active.some((neighbour) => neighbour === first.peerId || neighbour === second.peerId), `${peer.peerId.toString()} has a remaining worker as overlay neighbour (active: ${active.join(', ')})`)
    }

    // The next broadcasts, one from a moved peer and one from a peer that stayed, reach
    // every other peer by gossip.
    const publishers = [peers[2]?.[0], peers[0]?.[0]] as PharosPeer[]
    for (const publisher of publishers) {
      const entry = await publisher.publishPost({ text: `after the drain, from ${publisher.peerId.toString()}` })
      const id = entry.cid.toString()
      const receivers = peers.flat().filter((peer) => peer !== publisher)
      await waitFor(`every peer to get ${id} by gossip`, () => receivers.every((peer) => gossiped.get(peer.peerId.toString())?.has(id) === true), 20_000,
        () => `missing at ${receivers.filter((peer) => gossiped.get(peer.peerId.toString())?.has(id) !== true).map((peer) => peer.peerId.toString()).join(', ')}`)
    }
  })
})
