/**
 * Connection hygiene on real libp2p: a connection the overlay dialled is closed once its peer
 * left every view and nothing else uses it, after a grace period; one that another protocol's
 * stream, a peer-store tag or the application itself holds is kept, and so is one the remote
 * opened.
 *
 * The views are one slot wide (N = 1), so a second joiner makes the contact drop the first:
 * the first joiner's connection to the contact is then one the overlay dialled and no longer
 * needs. Shuffles are turned off (a shuffle round would ask the contact again).
 */
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import type { Connection } from '@libp2p/interface'
import { createOverlayPeer } from '../helpers/overlay-peer.ts'
import type { OverlayPeer } from '../helpers/overlay-peer.ts'
import { sleep, waitFor } from '@pharos/testing/wait.ts'

const NETWORK = 'pharos-connections-test'
const GRACE_MS = 1500
/** Long enough for the grace period, the idle links closing and a few sweeps (one a second) on a loaded machine. */
const RELEASE_WAIT_MS = 20_000
const HOLD_PROTOCOL = '/pharos-test/hold/1.0.0'

describe('overlay connections', () => {
  const started: OverlayPeer[] = []

  const peer = async (): Promise<OverlayPeer> => {
    const node = await createOverlayPeer({
      network: NETWORK,
      topics: ['content'],
      networkSize: 1,
      linkIdleMs: 1000,
      connectionGraceMs: GRACE_MS,
      topicConfig: { hyparview: { shuffleIntervalMs: 3_600_000 } }
    })
    await node.start()
    started.push(node)
    return node
  }

  afterEach(async () => {
    await Promise.all(started.splice(0).map(async (node) => { await node.stop() }))
  })

  const isNeighbour = (node: OverlayPeer, other: OverlayPeer): boolean =>
    node.services.overlay.snapshot().content?.active.includes(other.peerId.toString()) === true
  const openTo = (node: OverlayPeer, other: OverlayPeer): Connection[] =>
    node.getConnections(other.peerId).filter((connection) => connection.status === 'open')

  /**
   * `first` joins `contact` through the overlay (which dials it, unless the application already
   * has), then `second` joins and the contact drops `first`. Resolves once `first` is alone.
   */
  const displace = async (first: OverlayPeer, contact: OverlayPeer, second: OverlayPeer, options: { appDial?: boolean } = {}): Promise<Connection> => {
    if (options.appDial === true) await first.dial(contact.getMultiaddrs())
    else await first.peerStore.merge(contact.peerId, { multiaddrs: contact.getMultiaddrs() })
    first.services.overlay.join('content', contact.peerId)
    await waitFor('the first joiner and the contact to be neighbours', () => isNeighbour(first, contact) && isNeighbour(contact, first), 10_000)
    const [connection] = openTo(first, contact)
    assert.ok(connection !== undefined)
    await second.peerStore.merge(contact.peerId, { multiaddrs: contact.getMultiaddrs() })
    second.services.overlay.join('content', contact.peerId)
    await waitFor('the contact to drop the first joiner for the second', () => isNeighbour(contact, second) && !isNeighbour(first, contact) && !isNeighbour(contact, first), 10_000)
    return connection
  }

  it('closes a connection it dialled once the peer left every view and nothing else used it for the grace period', async () => {
    const [first, contact, second] = [await peer(), await peer(), await peer()]
    const connection = await displace(first, contact, second)
    assert.equal(connection.direction, 'outbound')
    assert.equal(connection.status, 'open', 'not closed at once: the grace period first')
    await waitFor('the first joiner to close its connection to the contact', () => connection.status !== 'open', RELEASE_WAIT_MS)
    assert.equal(first.services.overlay.driverCounters().connectionsReleased, 1)
    assert.equal(first.services.overlay.heldConnections(), 0)
    // Closing it on purpose is not a failure: the contact stays in reserve.
    assert.ok(first.services.overlay.snapshot().content?.passive.includes(contact.peerId.toString()), 'the contact is still in the passive view')
    // The contact never closes a connection the first joiner opened; the neighbours keep theirs.
    assert.equal(contact.services.overlay.driverCounters().connectionsReleased, 0)
    assert.equal(openTo(second, contact).length, 1, 'the neighbours\' connection stays')
    assert.equal(second.services.overlay.heldConnections(), 1)
  })

  it('keeps it while another protocol has a stream open on it, and closes it once that stream ends', async () => {
    const [first, contact, second] = [await peer(), await peer(), await peer()]
    await contact.handle(HOLD_PROTOCOL, () => {}) // the stream stays open until the opener closes it
    await first.peerStore.merge(contact.peerId, { multiaddrs: contact.getMultiaddrs() })
    first.services.overlay.join('content', contact.peerId)
    await waitFor('the first joiner and the contact to be neighbours', () => isNeighbour(first, contact), 10_000)
    const [connection] = openTo(first, contact)
    assert.ok(connection !== undefined)
    const held = await connection.newStream(HOLD_PROTOCOL)
    await second.peerStore.merge(contact.peerId, { multiaddrs: contact.getMultiaddrs() })
    second.services.overlay.join('content', contact.peerId)
    await waitFor('the contact to drop the first joiner', () => !isNeighbour(first, contact) && !isNeighbour(contact, first), 10_000)
    await waitFor('the overlay links on it to close', () => connection.streams.every((stream) => stream.protocol === HOLD_PROTOCOL), RELEASE_WAIT_MS)
    await sleep(3 * GRACE_MS)
    assert.equal(connection.status, 'open', 'a stream of another protocol keeps it')
    assert.equal(first.services.overlay.driverCounters().connectionsReleased, 0)
    held.abort(new Error('done'))
    await waitFor('the connection to close once the stream ended', () => connection.status !== 'open', RELEASE_WAIT_MS)
  })

  it('keeps it while the peer carries a tag in the peer store (a relay reservation, a bootstrap tag)', async () => {
    const [first, contact, second] = [await peer(), await peer(), await peer()]
    const connection = await displace(first, contact, second)
    await first.peerStore.merge(contact.peerId, { tags: { 'keep-alive-pharos-test': { value: 50 } } })
    await waitFor('the overlay links on it to close', () => connection.streams.length === 0, RELEASE_WAIT_MS)
    await sleep(3 * GRACE_MS)
    assert.equal(connection.status, 'open', 'the tag keeps it')
    await first.peerStore.merge(contact.peerId, { tags: { 'keep-alive-pharos-test': undefined } })
    await waitFor('the connection to close once the tag is gone', () => connection.status !== 'open', RELEASE_WAIT_MS)
  })

  it('never closes a connection the application dialled, though the overlay used it', async () => {
    const [first, contact, second] = [await peer(), await peer(), await peer()]
    const connection = await displace(first, contact, second, { appDial: true })
    await waitFor('the overlay links on it to close', () => connection.streams.length === 0, RELEASE_WAIT_MS)
    await sleep(3 * GRACE_MS)
    assert.equal(connection.status, 'open')
    assert.equal(first.services.overlay.driverCounters().connectionsOpened, 0, 'the overlay dialled nothing')
    assert.equal(first.services.overlay.driverCounters().connectionsReleased, 0)
  })
})
