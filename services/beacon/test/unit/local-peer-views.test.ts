/**
 * The single-worker peer view (LocalPeerViews): disconnected peers leave it after the
 * retention, though the table is now scanned at most once a second rather than on every
 * disconnect (a burst of disconnects at 10k peers was quadratic).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LocalPeerViews } from '../../src/fleet/in-process-fleet-state.ts'
import { sleep } from '@pharos/testing/wait.ts'

const connection = { addrs: ['/ip4/127.0.0.1/tcp/4001'], transport: 'tcp' }

describe('LocalPeerViews', () => {
  it('keeps disconnected peers for the retention, then drops them, with a burst of disconnects in between', async () => {
    const views = new LocalPeerViews({ workerId: 'w', workerName: 'w', retentionMs: 300 })
    const ids = Array.from({ length: 1000 }, (_, i) => `peer-${i}`)
    for (const id of ids) views.connected(id, connection)
    for (const id of ids) views.disconnected(id)
    const listed = async (): Promise<number> => (await views.fleetView({ limit: 10_000 })).peers.length
    assert.equal(await listed(), 1000, 'within the retention, disconnected peers are still listed')
    await sleep(1100)
    views.connected('late', connection)
    views.disconnected('late')
    assert.equal(await listed(), 1, 'past the retention the burst is gone; the late one is kept')
  })
})
