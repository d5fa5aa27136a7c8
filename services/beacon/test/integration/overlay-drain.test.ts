/**
 * The overlay driver and a draining node, on real libp2p: a node that sent a drain notice,
 * or refused a link as `draining`, is dropped from every view and never dialled again while
 * it drains. Without that, a peer that hung up on its draining beacon redialled it to retry
 * the lost link, and the beacon waited out its whole drain deadline for peers that had moved
 * (fleet-drain failed in CI with none of three peers counted as gone).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { DrainNotice } from '@pharos/net/overlay/overlay-driver.ts'
import { createOverlayPeer } from '../helpers/overlay-peer.ts'
import type { OverlayPeer } from '../helpers/overlay-peer.ts'
import { sleep, waitFor } from '@pharos/testing/wait.ts'

const NETWORK = 'pharos-drain-test'
const TOPICS = ['content', 'sync', 'keyexchange']

describe('the overlay driver and a draining node', () => {
  let draining: OverlayPeer
  let sibling: OverlayPeer
  let told: OverlayPeer
  let late: OverlayPeer

  before(async () => {
    // Each takes the drainer's notice with its sibling list, as a peer takes its beacon's.
    const make = async (): Promise<OverlayPeer> => {
      const peer = await createOverlayPeer({ network: NETWORK, networkSize: 16, drainTrust: (from) => from.equals(draining.peerId) ? 'siblings' : 'refused' })
      await peer.start()
      return peer
    }
    ;[draining, sibling, told, late] = [await make(), await make(), await make(), await make()]
  })

  after(async () => {
    await Promise.all([draining, sibling, told, late].map(async (peer) => { await peer?.stop() }))
  })

  it('drops a node that sent a drain notice from its views, and never dials it again', async () => {
    await told.dial(draining.getMultiaddrs()[0] ?? assert.fail('no address'))
    for (const topic of TOPICS) told.services.overlay.join(topic, draining.peerId)
    await waitFor('the joiner to have the draining node as neighbour', () => told.services.overlay.snapshot().content?.active.includes(draining.peerId.toString()) === true, 10_000)

    const notices: DrainNotice[] = []
    told.services.overlay.onDrain((notice) => { notices.push(notice) })
    const sent = await draining.services.overlay.drain([{ peerId: sibling.peerId.toString(), multiaddrs: sibling.getMultiaddrs().map(String) }], [told.peerId])
    assert.deepEqual(sent.map(String), [told.peerId.toString()], 'the connected peer took the notice')
    await waitFor('the notice to arrive', () => notices.length === 1, 5000)
    assert.deepEqual(notices[0]?.siblings.map((entry) => entry.peerId), [sibling.peerId.toString()])
    assert.deepEqual(notices[0]?.siblings[0]?.multiaddrs, sibling.getMultiaddrs().map(String), 'the listeners get every address of the sibling')
    assert.equal(await told.peerStore.has(sibling.peerId), false, 'which the peer store never sees: the application dials them')

    for (const topic of TOPICS) {
      const view = told.services.overlay.snapshot()[topic]
      assert.ok(view !== undefined)
      assert.ok(!view.active.includes(draining.peerId.toString()), `${topic}: not an active neighbour any more`)
      assert.ok(!view.passive.includes(draining.peerId.toString()), `${topic}: not kept in reserve`)
      assert.ok(!view.reconnecting.includes(draining.peerId.toString()), `${topic}: its link is not retried`)
    }

    // The application hangs up (the SDK does once it has moved); asked to link again, the
    // driver refuses without dialling, so the drainer sees its peer gone for good.
    await told.hangUp(draining.peerId)
    for (const topic of TOPICS) told.services.overlay.join(topic, draining.peerId)
    await sleep(1000)
    assert.equal(told.getConnections(draining.peerId).length, 0, 'no connection to the draining node was opened again')
  })

  it('takes a notice from a node it gives `departure` trust as that node leaving, with no siblings', async () => {
    const other = await createOverlayPeer({ network: NETWORK, networkSize: 16, drainTrust: () => 'departure' })
    await other.start()
    try {
      const notices: DrainNotice[] = []
      other.services.overlay.onDrain((notice) => { notices.push(notice) })
      await other.dial(sibling.getMultiaddrs()[0] ?? assert.fail('no address'))
      await waitFor('the drainer to see the connection', () => sibling.getConnections(other.peerId).length > 0, 5000)
      await sibling.services.overlay.drain([{ peerId: late.peerId.toString(), multiaddrs: late.getMultiaddrs().map(String) }], [other.peerId])
      await waitFor('the notice to arrive', () => notices.length === 1, 5000)
      assert.deepEqual(notices[0]?.siblings, [], 'the sender may say it leaves, not where to go')
      assert.equal(other.services.overlay.isDeparting(sibling.peerId.toString()), true)
      assert.equal(await other.peerStore.has(late.peerId), false)
    } finally {
      await other.stop()
    }
  })

  it('treats a `draining` refusal as a notice: one dial, then none', async () => {
    const refusals: string[] = []
    late.services.overlay.onRefused((error) => { refusals.push(error.message) })
    await late.dial(draining.getMultiaddrs()[0] ?? assert.fail('no address'))
    late.services.overlay.join('content', draining.peerId)
    await waitFor('the draining node to refuse the link', () => refusals.length > 0, 5000)
    assert.match(refusals[0] ?? '', /draining/)
    await late.hangUp(draining.peerId)
    for (const topic of TOPICS) late.services.overlay.join(topic, draining.peerId)
    await sleep(1000)
    assert.equal(late.getConnections(draining.peerId).length, 0, 'the refused node was not dialled again')
    assert.equal(refusals.length, 1, 'and refused nothing more, as nothing more was asked of it')
  })
})
