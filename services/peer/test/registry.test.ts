/**
 * The peer's copy of the registry (issue 23, item 1; docs/registry.md), against real worker
 * processes: the peer admits only registered accounts (and its beacons) into its views and
 * refuses others with the beacon's reason, sizes its views from N and resizes as accounts are
 * registered at the beacon, refuses a registry page whose signature does not hold, and takes
 * its accounts from a beacon whose accounts come from a JSON file.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { OverlayRefusedError } from '@pharos/net/overlay/overlay-driver.ts'
import { decodeCanonical, encodeCbor } from '@pharos/protocol/log/index.ts'
import { activeViewCapacity } from '@pharos/protocol/overlay/hyparview.ts'
import { registryProtocolId, signRegistryPage } from '@pharos/protocol/registry/index.ts'
import type { RegistryPageBody } from '@pharos/protocol/registry/index.ts'
import { signerFor, generateKey } from '../src/keys.ts'
import { createPharosPeer } from '../src/pharos-peer.ts'
import type { PharosPeer } from '../src/pharos-peer.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { startFakeBeacon } from './helpers/fake-beacon.ts'
import type { FakeBeacon } from './helpers/fake-beacon.ts'
import { addressOf } from './helpers/peers.ts'
import { registerAccount, startWorker, tempDir } from './helpers/worker.ts'
import type { WorkerProcess } from './helpers/worker.ts'

const contentViews = (peer: PharosPeer) => peer.libp2p.services.overlay.snapshot().content ?? assert.fail('no content topic')
const inViews = (peer: PharosPeer, id: string): boolean => {
  const view = contentViews(peer)
  return [...view.active, ...view.passive, ...view.pending].includes(id)
}

describe('a peer keeps the registry and gates its views with it', () => {
  let worker: WorkerProcess
  let registryKeyId: string
  const peers: PharosPeer[] = []
  const peer = async (bootstrap: string[], registered: boolean, extra: { registryRefreshMs?: number, listen?: string[] } = {}): Promise<PharosPeer> => {
    const created = await createPharosPeer({ privateKey: await generateKey(), bootstrap, registryKey: registryKeyId, ...extra })
    peers.push(created)
    if (registered) await registerAccount(worker, created.peerId.toString())
    return created
  }

  before(async () => {
    const key = await generateKeyPair('Ed25519')
    registryKeyId = peerIdFromPrivateKey(key).toString()
    worker = await startWorker({ PHAROS_REGISTRY_KEY: Buffer.from(privateKeyToProtobuf(key)).toString('base64') })
  })
  after(async () => {
    await Promise.all(peers.map(async (each) => { await each.stop() }))
    await worker?.stop()
  })

  it('refuses an unregistered key from its views with not-registered, and resizes its views as N grows at the beacon', async () => {
    const alice = await peer([worker.tcpAddr], true, { registryRefreshMs: 300, listen: ['/ip4/127.0.0.1/tcp/0'] })
    const carol = await peer([], true, { listen: ['/ip4/127.0.0.1/tcp/0'] })
    await alice.start()
    assert.deepEqual(alice.registry(), { gate: 'registry', networkSize: 2, accounts: 2, signer: registryKeyId })
    assert.equal(contentViews(alice).activeCapacity, activeViewCapacity(2))

    // Mallory holds no account: alice refuses her as a beacon would.
    const mallory = await peer([addressOf(alice)], false)
    await assert.rejects(mallory.start(), (err: unknown) => err instanceof OverlayRefusedError && err.reason === 'not-registered')
    assert.equal(inViews(alice, mallory.peerId.toString()), false)
    // Nor does she enter alice's passive view when named to it; carol, registered, does.
    await carol.start()
    await alice.libp2p.services.overlay.learn([
      // (Her node stopped with her refused start: any address will do, she is not to be dialled.)
      { peerId: mallory.peerId.toString(), multiaddrs: ['/ip4/127.0.0.1/tcp/9'] },
      { peerId: carol.peerId.toString(), multiaddrs: [addressOf(carol)] }
    ])
    assert.equal(inViews(alice, carol.peerId.toString()), true)
    assert.equal(inViews(alice, mallory.peerId.toString()), false)

    // 30 more accounts at the beacon: alice's periodic refresh takes them and her views grow.
    for (let i = 0; i < 30; i++) await registerAccount(worker, peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())
    await waitFor('alice to learn N = 32', () => alice.registry().networkSize === 32, 20_000, () => JSON.stringify(alice.registry()))
    const view = contentViews(alice)
    assert.equal(view.networkSize, 32)
    assert.equal(view.activeCapacity, activeViewCapacity(32))
    assert.ok(view.activeCapacity > activeViewCapacity(2))
    // And mallory, registered now, is let in.
    await registerAccount(worker, mallory.peerId.toString())
    await alice.refreshRegistry()
    await mallory.start()
    await waitFor('mallory in alice\'s views', () => inViews(alice, mallory.peerId.toString()))
  })
})

describe('a peer verifies the registry it is given', () => {
  let fake: FakeBeacon
  let answer: () => Promise<Uint8Array>
  let fleet: ReturnType<typeof signerFor>
  let listed: string
  let body: RegistryPageBody
  const peers: PharosPeer[] = []

  before(async () => {
    fleet = signerFor(await generateKey())
    listed = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    body = { network: 'pharos', kind: 'snapshot', cursor: '0123456789abcdef.1', count: 1, accounts: [listed], removed: [], more: false, issuedAt: Date.now() }
    // A stand-in beacon that answers the registry protocol with whatever the test says.
    fake = await startFakeBeacon({ admit: () => ({ admitted: true }), sync: () => ({ t: 'heads', heads: [] }) as never })
    await fake.handle(registryProtocolId('pharos'), (stream) => {
      void (async () => {
        const lp = lpStream(stream)
        await lp.read()
        await lp.write(await answer())
        await stream.close()
      })().catch((err: unknown) => { stream.abort(err as Error) })
    })
  })
  after(async () => {
    await Promise.all(peers.map(async (each) => { await each.stop() }))
    await fake?.stop()
  })

  const started = async (registryKey?: string): Promise<PharosPeer> => {
    const created = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [fake.address], ...(registryKey === undefined ? {} : { registryKey }) })
    peers.push(created)
    await created.start()
    return created
  }

  it('refuses a page whose signature was tampered with, and one signed by another key than the fleet\'s', async () => {
    const signed = await signRegistryPage(body, fleet)
    const decoded = decodeCanonical(signed)
    assert.ok(decoded.ok)
    const statement = decoded.value as { body: RegistryPageBody }
    const intruder = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    answer = async () => encodeCbor({ ...statement, body: { ...statement.body, accounts: [intruder, listed].sort(), count: 2 } })
    const tampered = await started(fleet.peerId)
    assert.deepEqual(tampered.registry(), { gate: 'waiting', networkSize: 1000, accounts: 0, signer: fleet.peerId })

    answer = async () => await signRegistryPage(body, signerFor(await generateKey()))
    const foreign = await started(fleet.peerId)
    assert.equal(foreign.registry().gate, 'waiting')

    // The same fake with a good page: taken, so the refusals above were the signatures'.
    answer = async () => signed
    const good = await started(fleet.peerId)
    assert.deepEqual(good.registry(), { gate: 'registry', networkSize: 1, accounts: 1, signer: fleet.peerId })
    // With no key given, the first signer is trusted from then on, and another key is refused.
    const firstUse = await started()
    assert.equal(firstUse.registry().signer, fleet.peerId)
    answer = async () => await signRegistryPage({ ...body, accounts: [], count: 0 }, signerFor(await generateKey()))
    await firstUse.refreshRegistry()
    assert.deepEqual(firstUse.registry(), { gate: 'registry', networkSize: 1, accounts: 1, signer: fleet.peerId })
  })
})

describe('a peer of a beacon whose accounts come from a JSON file', () => {
  let worker: WorkerProcess
  let file: string
  const peers: PharosPeer[] = []

  after(async () => {
    await Promise.all(peers.map(async (each) => { await each.stop() }))
    await worker?.stop()
  })

  it('joins when the file lists it, is refused when it does not, and learns edits of the file', async () => {
    const alice = await generateKey()
    const bob = await generateKey()
    const aliceId = peerIdFromPrivateKey(alice).toString()
    file = join(await tempDir(), 'accounts.json')
    await writeFile(file, JSON.stringify({ accounts: [{ peerId: aliceId, label: 'alice' }] }))
    worker = await startWorker({ PHAROS_ACCOUNTS_SOURCE: pathToFileURL(file).toString(), PHAROS_ACCOUNTS_REFRESH_MS: '1000' })

    const registration = await fetch(`${worker.httpUrl}/v1/accounts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${worker.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ peerId: peerIdFromPrivateKey(bob).toString() })
    })
    assert.equal(registration.status, 409)

    const alicePeer = await createPharosPeer({ privateKey: alice, bootstrap: [worker.tcpAddr] })
    peers.push(alicePeer)
    await alicePeer.start()
    assert.equal(alicePeer.registry().gate, 'registry')
    assert.equal(alicePeer.registry().networkSize, 1)

    const bobPeer = await createPharosPeer({ privateKey: bob, bootstrap: [worker.tcpAddr] })
    peers.push(bobPeer)
    await assert.rejects(bobPeer.start(), (err: unknown) => err instanceof OverlayRefusedError && err.reason === 'not-registered')

    await writeFile(file, JSON.stringify([aliceId, peerIdFromPrivateKey(bob).toString()]))
    await waitFor('alice to learn bob from the edited file', async () => (await alicePeer.refreshRegistry()).networkSize === 2, 20_000)
    await bobPeer.start()
    assert.equal(bobPeer.registry().networkSize, 2)
  })
})
