/**
 * The registry of accounts served to peers (issue 23, item 1; docs/registry.md): a snapshot
 * and the changes since a cursor, signed by the fleet's registry key, over GET /v1/registry
 * and `/<network>/registry/1.0.0`, from a worker on Postgres (accounts through the admin API)
 * and from one reading a JSON file (read-only: the admin API answers 409).
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { base36 } from 'multiformats/bases/base36'
import { RegistryClient } from '@pharos/net/clients/registry-client.ts'
import { RegistryVerificationError } from '@pharos/net/errors.ts'
import { openRegistryPage } from '@pharos/protocol/registry/index.ts'
import type { RegistryPage } from '@pharos/protocol/registry/index.ts'
import { ConfigError, loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { loadRegistryKey } from '../../src/accounts/registry-key.ts'
import { deriveWorkerKey } from '../../src/p2p/identity.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { inProcessEnv, tempDir } from '@pharos/testing/worker-process.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'

const TOKEN = 'registry-test-admin-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }

async function newPeerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

/** GET /v1/registry, its signed statement verified against `signer`. */
async function httpPage (worker: Worker, query: string, signer: string): Promise<RegistryPage> {
  const response = await worker.app.inject({ method: 'GET', url: `/v1/registry${query}` })
  assert.equal(response.statusCode, 200, response.body)
  const json = response.json()
  assert.equal(json.signer, signer)
  const opened = await openRegistryPage(Buffer.from(json.statement, 'base64'), { network: 'pharos', signer })
  assert.ok(opened.ok, opened.ok ? '' : opened.detail)
  // The decoded fields are the signed ones.
  assert.deepEqual({ kind: json.kind, cursor: json.cursor, count: json.count, accounts: json.accounts, removed: json.removed, more: json.more },
    { kind: opened.value.kind, cursor: opened.value.cursor, count: opened.value.count, accounts: opened.value.accounts, removed: opened.value.removed, more: opened.value.more })
  return opened.value
}

function tcpAddress (worker: Worker): string {
  return worker.node.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/') && !a.toString().includes('/ws'))?.toString() ?? assert.fail('no TCP address')
}

describe('registry on Postgres accounts', () => {
  let worker: Worker
  let client: ClientPeer
  let registryKeyId: string
  const registered: string[] = []

  before(async () => {
    const registryKey = await generateKeyPair('Ed25519')
    registryKeyId = peerIdFromPrivateKey(registryKey).toString()
    worker = await startWorker(loadConfig(await inProcessEnv({
      DATABASE_URL: await createTestDatabase('registry'),
      PHAROS_ADMIN_TOKENS: TOKEN,
      PHAROS_REGISTRY_KEY: Buffer.from(privateKeyToProtobuf(registryKey)).toString('base64')
    })), createLogger('silent'))
    for (let i = 0; i < 5; i++) {
      const peerId = await newPeerId()
      const added = await worker.app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: { peerId } })
      assert.equal(added.statusCode, 201)
      registered.push(peerId)
    }
    client = await createClientPeer()
    await client.start()
  })
  after(async () => {
    await client?.stop()
    await worker?.stop()
  })

  it('serves a signed snapshot in pages over HTTP, and the changes since a cursor', async () => {
    const sorted = [...registered].sort()
    const first = await httpPage(worker, '?limit=3', registryKeyId)
    assert.equal(first.kind, 'snapshot')
    assert.equal(first.count, 5)
    assert.deepEqual(first.accounts, sorted.slice(0, 3))
    assert.equal(first.more, true)
    const second = await httpPage(worker, `?limit=3&after=${first.accounts.at(-1) ?? ''}`, registryKeyId)
    assert.deepEqual(second.accounts, sorted.slice(3))
    assert.equal(second.more, false)

    const none = await httpPage(worker, `?cursor=${first.cursor}`, registryKeyId)
    assert.deepEqual({ kind: none.kind, accounts: none.accounts, removed: none.removed }, { kind: 'changes', accounts: [], removed: [] })

    const added = await newPeerId()
    assert.equal((await worker.app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: { peerId: added } })).statusCode, 201)
    const gone = registered.shift() ?? assert.fail()
    assert.equal((await worker.app.inject({ method: 'DELETE', url: `/v1/accounts/${gone}`, headers: auth })).statusCode, 204)
    registered.push(added)
    const changes = await httpPage(worker, `?cursor=${first.cursor}`, registryKeyId)
    assert.equal(changes.kind, 'changes')
    assert.deepEqual(changes.accounts, [added])
    assert.deepEqual(changes.removed, [gone])
    assert.equal(changes.count, 5)
    assert.notEqual(changes.cursor, first.cursor)
    const after = await httpPage(worker, `?cursor=${changes.cursor}`, registryKeyId)
    assert.deepEqual([after.accounts, after.removed], [[], []])

    // A cursor of another epoch (another worker, or before a restart) gets a fresh snapshot.
    const unknown = await httpPage(worker, '?cursor=0123456789abcdef.1', registryKeyId)
    assert.equal(unknown.kind, 'snapshot')
    assert.deepEqual(unknown.accounts, [...registered].sort())
  })

  it('answers a bad query with a 400 that says why', async () => {
    for (const [query, reason] of [['?cursor=yesterday', /cursor/], ['?after=alice', /after/], ['?limit=0', /limit/], ['?limit=5000', /limit/], [`?cursor=0123456789abcdef.1&after=${registered[0] ?? ''}`, /not both/]] as const) {
      const response = await worker.app.inject({ method: 'GET', url: `/v1/registry${query}` })
      assert.equal(response.statusCode, 400, query)
      assert.match(response.json().error.details, reason, query)
    }
  })

  it('serves the same signed pages over libp2p; a page checked against another key is refused', async () => {
    const registry = new RegistryClient(client, 'pharos', 10_000)
    const { multiaddr } = await import('@multiformats/multiaddr')
    const connection = await client.dial(multiaddr(tcpAddress(worker)))
    const beacon = connection.remotePeer
    const snapshot = await registry.fetchPage(beacon, { cursor: null, after: null, limit: 1000 }, { signer: registryKeyId })
    assert.equal(snapshot.kind, 'snapshot')
    assert.deepEqual(snapshot.accounts, [...registered].sort())
    assert.equal(snapshot.signer, registryKeyId)
    assert.notEqual(snapshot.signer, worker.node.peerId.toString(), 'the fleet key signs, not the worker key')

    const added = await newPeerId()
    assert.equal((await worker.app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: { peerId: added } })).statusCode, 201)
    registered.push(added)
    const changes = await registry.fetchPage(beacon, { cursor: snapshot.cursor, after: null, limit: 1000 }, { signer: registryKeyId })
    assert.deepEqual([changes.kind, changes.accounts, changes.removed, changes.count], ['changes', [added], [], registered.length])

    await assert.rejects(registry.fetchPage(beacon, { cursor: null, after: null, limit: 10 }, { signer: await newPeerId() }),
      (err: unknown) => err instanceof RegistryVerificationError && err.code === 'bad-signer')
  })
})

describe('the fleet\'s registry key', () => {
  it('is one key for every worker given the fleet secret, unlike their worker keys; fleet mode without a source is refused', async () => {
    const secret = 'registry-test-fleet-secret-0123456789abcdef'
    const a = await loadRegistryKey({ fleetSecret: secret, network: 'pharos', dataDir: await tempDir() })
    const b = await loadRegistryKey({ fleetSecret: secret, network: 'pharos', dataDir: await tempDir() })
    assert.equal(a.source, 'fleet-secret')
    assert.ok(a.key.equals(b.key))
    assert.ok(!a.key.equals((await deriveWorkerKey(secret, 'pharos', 'worker-0'))))
    assert.ok(!a.key.equals((await loadRegistryKey({ fleetSecret: secret, network: 'other', dataDir: await tempDir() })).key))
    // Embedded: generated once, then read back from the data dir.
    const dataDir = await tempDir()
    const generated = await loadRegistryKey({ network: 'pharos', dataDir })
    const again = await loadRegistryKey({ network: 'pharos', dataDir })
    assert.deepEqual([generated.source, again.source], ['generated', 'data-dir'])
    assert.ok(generated.key.equals(again.key))
    const peerKey = Buffer.from(privateKeyToProtobuf(await generateKeyPair('Ed25519'))).toString('base64')
    assert.throws(() => loadConfig({ DATABASE_URL: 'postgres://pharos@db.example/pharos', REDIS_URL: 'redis://redis.example:6379', PHAROS_PEER_KEY: peerKey }),
      (err: unknown) => err instanceof ConfigError && err.key === 'PHAROS_REGISTRY_KEY')
  })
})

describe('registry from a JSON file', () => {
  let worker: Worker
  let file: string
  const accounts: string[] = []

  before(async () => {
    file = join(await tempDir(), 'accounts.json')
    const first = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const second = await newPeerId()
    accounts.push(first.toString(), second)
    // One in its CID form (kept canonical), one with a label, and one that cannot be an account.
    await writeFile(file, JSON.stringify({ accounts: [first.toCID().toString(base36), { peerId: second, label: 'bob' }, 'not-a-peer-id'] }))
    worker = await startWorker(loadConfig(await inProcessEnv({
      DATABASE_URL: await createTestDatabase('registry_file'),
      PHAROS_ADMIN_TOKENS: TOKEN,
      PHAROS_ACCOUNTS_SOURCE: pathToFileURL(file).toString()
    })), createLogger('silent'))
  })
  after(async () => { await worker?.stop() })

  it('serves the file\'s accounts, refuses admin writes with 409, and follows edits of the file', async () => {
    const signer = worker.registryService.signerId
    const snapshot = await httpPage(worker, '', signer)
    assert.deepEqual(snapshot.accounts, [...accounts].sort())
    assert.equal(snapshot.count, 2)
    assert.equal(worker.accounts.source, 'file')
    const listed = await worker.app.inject({ method: 'GET', url: '/v1/accounts', headers: auth })
    assert.deepEqual(listed.json().accounts.map((account: { peerId: string, label: string | null }) => [account.peerId, account.label]).sort(),
      [[accounts[0], null], [accounts[1], 'bob']].sort())

    const write = await worker.app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: { peerId: await newPeerId() } })
    assert.equal(write.statusCode, 409)
    assert.match(write.json().error.details, /external file source.*read-only/)
    const removal = await worker.app.inject({ method: 'DELETE', url: `/v1/accounts/${accounts[0] ?? ''}`, headers: auth })
    assert.equal(removal.statusCode, 409)
    assert.equal(worker.accounts.isRegistered(accounts[0] ?? ''), true)

    const third = await newPeerId()
    await writeFile(file, JSON.stringify([accounts[1], third]))
    await worker.accounts.refresh()
    const changes = await httpPage(worker, `?cursor=${snapshot.cursor}`, signer)
    assert.deepEqual([changes.kind, changes.accounts, changes.removed, changes.count], ['changes', [third], [accounts[0]], 2])

    // A bad edit keeps the accounts last read.
    await writeFile(file, '{ "accounts": ')
    await assert.rejects(worker.accounts.refresh(), /not JSON/)
    assert.equal(worker.accounts.count, 2)
  })

  it('refuses to start when the file cannot be read, naming the key', async () => {
    const config = loadConfig(await inProcessEnv({ PHAROS_ACCOUNTS_SOURCE: pathToFileURL(join(await tempDir(), 'missing.json')).toString() }))
    await assert.rejects(startWorker(config, createLogger('silent')), (err: unknown) => err instanceof ConfigError && err.key === 'PHAROS_ACCOUNTS_SOURCE' && /ENOENT/.test(err.message))
    assert.throws(() => loadConfig({ PHAROS_ACCOUNTS_SOURCE: 'ftp://example.com/accounts.json' }), (err: unknown) => err instanceof ConfigError && err.key === 'PHAROS_ACCOUNTS_SOURCE')
  })
})
