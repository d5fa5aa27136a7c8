import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ConfigError, loadConfig } from '../../src/config/load.ts'
import { deriveWorkerKey, encodePeerKey, loadPeerKey } from '../../src/p2p/identity.ts'
import { tempDir } from '@pharos/testing/worker-process.ts'

const SECRET = 'a-fleet-secret-of-at-least-32-characters!'
const peerIdOf = async (key: Awaited<ReturnType<typeof deriveWorkerKey>>): Promise<string> => peerIdFromPrivateKey(key).toString()

describe('stateless worker identity', () => {
  it('derives the same peer ID from the same secret, network and name, and unrelated ones otherwise', async () => {
    const first = await peerIdOf(await deriveWorkerKey(SECRET, 'pharos', 'worker-0'))
    assert.equal(await peerIdOf(await deriveWorkerKey(SECRET, 'pharos', 'worker-0')), first, 'a replaced worker keeps its peer ID')
    const others = [
      await peerIdOf(await deriveWorkerKey(SECRET, 'pharos', 'worker-1')),
      await peerIdOf(await deriveWorkerKey(SECRET, 'other-net', 'worker-0')),
      await peerIdOf(await deriveWorkerKey(`${SECRET}x`, 'pharos', 'worker-0'))
    ]
    assert.equal(new Set([first, ...others]).size, 4)
  })

  it('takes PHAROS_PEER_KEY first, then the fleet secret, and writes nothing to the data dir for either', async () => {
    const dataDir = await tempDir()
    const configured = await generateKeyPair('Ed25519')
    const fromConfig = await loadPeerKey({ peerKey: encodePeerKey(configured), fleetSecret: SECRET, network: 'pharos', workerName: 'w', dataDir })
    assert.equal(fromConfig.source, 'config')
    assert.equal(peerIdFromPrivateKey(fromConfig.key).toString(), peerIdFromPrivateKey(configured).toString())
    const derived = await loadPeerKey({ fleetSecret: SECRET, network: 'pharos', workerName: 'w', dataDir })
    assert.equal(derived.source, 'fleet-secret')
    assert.equal(peerIdFromPrivateKey(derived.key).toString(), await peerIdOf(await deriveWorkerKey(SECRET, 'pharos', 'w')))
    const generated = await loadPeerKey({ network: 'pharos', workerName: 'w', dataDir })
    assert.equal(generated.source, 'generated', 'nothing was kept in the data dir before')
  })

  it('refuses fleet mode with neither a peer key nor a fleet secret, naming the key', () => {
    const fleet = { DATABASE_URL: 'postgres://db/pharos', REDIS_URL: 'redis://cache:6379' }
    assert.throws(() => loadConfig(fleet), (err: unknown) => err instanceof ConfigError && err.key === 'PHAROS_FLEET_SECRET')
    assert.throws(() => loadConfig({ ...fleet, PHAROS_FLEET_SECRET: 'short' }), (err: unknown) => err instanceof ConfigError && err.key === 'PHAROS_FLEET_SECRET' && !err.message.includes('short'))
    assert.equal(loadConfig({ ...fleet, PHAROS_FLEET_SECRET: SECRET, PHAROS_WORKER_NAME: 'pharos-0' }).workerName, 'pharos-0')
    assert.throws(() => loadConfig({ ...fleet, PHAROS_FLEET_SECRET: SECRET, PHAROS_WORKER_NAME: '-bad name' }), (err: unknown) => err instanceof ConfigError && err.key === 'PHAROS_WORKER_NAME')
  })
})
