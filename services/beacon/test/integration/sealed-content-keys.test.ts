/**
 * Content keys sealed at rest (issue 23, item 4), on real Postgres, real workers and real
 * libp2p peers that deposit and fetch keys through the key-exchange protocol:
 *
 * - a real `pg_dump` of the database holding deposited keys contains none of their bytes,
 *   raw, hex or base64;
 * - rotating the sealing key keeps old keys readable, seals new deposits under the new
 *   version, re-seals the old rows at start, and after that the old version can go; a key
 *   whose version is gone is refused as unavailable and counted, the worker carries on;
 * - a worker without a sealing key logs one line saying key exchange is off, refuses deposit
 *   and GETKEY as unavailable, and still pins and serves the gateway;
 * - plaintext keys stored before sealing are sealed at start and their plaintext cleared; a
 *   sealed blob moved to another row is refused as damaged, never opened as that row's key.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdirSync, statSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import { keyHashOf, signAllowList } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer } from '@pharos/protocol/log/index.ts'
import { KeyExchangeClient } from '@pharos/net/clients/key-exchange-client.ts'
import { RemoteError } from '@pharos/net/errors.ts'
import { ConfigError, loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { loadMigrations, migrate } from '../../src/storage/migrate.ts'
import { openPostgres } from '../../src/storage/pg-client.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { inProcessEnv, testSealingSecret } from '@pharos/testing/worker-process.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { createContentPeer, httpClient, testLogger, waitForPin } from '../helpers/storage.ts'
import { parseSealingKeys } from '../../src/keys/key-sealing.ts'

const NETWORK = 'pharos-sealing'
const PIN_TOKEN = 'sealing-pin-token-0123456789'
const run = promisify(execFile)

/** The newest pg_dump installed: with-services.sh runs the newest server, and pg_dump must not be older. */
function pgDumpPath (): string {
  const versions = readdirSync('/usr/lib/postgresql').filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(a) - Number(b))
  const newest = versions.at(-1)
  assert.ok(newest !== undefined, 'a Postgres installation under /usr/lib/postgresql (with-services.sh installs one)')
  return `/usr/lib/postgresql/${newest}/bin/pg_dump`
}

/** A plain-text dump of the whole database, as an operator's backup job takes it. */
async function pgDump (databaseUrl: string): Promise<Buffer> {
  const { stdout } = await run(pgDumpPath(), ['--format=plain', '--no-owner', databaseUrl], { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 })
  return stdout
}

/** Every form a key's bytes take in a dump or a log: raw, hex (bytea's `\x…`), base64 and base64url. */
function forms (key: Uint8Array): Array<{ name: string, bytes: Buffer }> {
  const raw = Buffer.from(key)
  return [
    { name: 'raw', bytes: raw },
    { name: 'hex', bytes: Buffer.from(raw.toString('hex')) },
    { name: 'HEX', bytes: Buffer.from(raw.toString('hex').toUpperCase()) },
    { name: 'base64', bytes: Buffer.from(raw.toString('base64')) },
    { name: 'base64 unpadded', bytes: Buffer.from(raw.toString('base64').replace(/=+$/, '')) },
    { name: 'base64url', bytes: Buffer.from(raw.toString('base64url')) }
  ]
}

function assertNoKeyIn (dump: Buffer, keys: readonly Uint8Array[]): void {
  for (const [i, key] of keys.entries()) {
    for (const { name, bytes } of forms(key)) assert.equal(dump.indexOf(bytes), -1, `the dump holds key ${i} (${name})`)
  }
}

interface KeyPeer {
  node: ClientPeer
  signer: Ed25519Signer
  client: KeyExchangeClient
}

function signerOf (key: PrivateKey): Ed25519Signer {
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (message) => await key.sign(message) }
}

/** A registered account's libp2p peer that speaks key exchange (the net package's client). */
async function keyPeer (privateKey: PrivateKey): Promise<KeyPeer> {
  const node = await createClientPeer({ privateKey })
  await node.start()
  return { node, signer: signerOf(privateKey), client: new KeyExchangeClient(node, NETWORK, 15_000) }
}

function tcpAddr (worker: Worker): Multiaddr {
  return worker.node.getMultiaddrs().find((addr) => addr.toString().startsWith('/ip4/127.0.0.1/') && !addr.toString().includes('/ws')) ?? assert.fail('no TCP address')
}

async function metricValue (worker: Worker, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${worker.httpUrl}/metrics`)).text()
  return Number(pattern.exec(text)?.[1] ?? 0)
}

/** Starts a worker on `databaseUrl` with `sealing` as PHAROS_KEY_SEALING_SECRET (undefined: none). */
async function startOn (databaseUrl: string, sealing: string | undefined, log = testLogger()): Promise<Worker> {
  const env = await inProcessEnv({ DATABASE_URL: databaseUrl, PHAROS_NETWORK: NETWORK, PHAROS_PIN_TOKENS: `alice:${PIN_TOKEN}`, PHAROS_PIN_POLL_INTERVAL_MS: '100', PHAROS_GC_INTERVAL_MS: '0' })
  if (sealing === undefined) delete env.PHAROS_KEY_SEALING_SECRET
  else env.PHAROS_KEY_SEALING_SECRET = sealing
  return await startWorker(loadConfig(env), log)
}

/** The author and reader accounts registered at `worker`, and each connected to it. */
async function connect (worker: Worker, ...peers: KeyPeer[]): Promise<void> {
  for (const peer of peers) {
    if (!worker.accounts.isRegistered(peer.signer.peerId)) await worker.accounts.add(peer.signer.peerId, `sealing-${peer.signer.peerId.slice(-6)}`)
    await peer.node.dial(tcpAddr(worker))
  }
}

/** Deposits a fresh key that `reader` may have; returns the key and its hash. */
async function depositFresh (worker: Worker, author: KeyPeer, reader: KeyPeer): Promise<{ key: Uint8Array, keyHash: Uint8Array }> {
  const key = new Uint8Array(randomBytes(32))
  const keyHash = await keyHashOf(key)
  const rule = await signAllowList({ keyHash, version: 1, peers: [reader.signer.peerId] }, author.signer)
  await author.client.deposit(worker.node.peerId, key, rule, { signal: AbortSignal.timeout(15_000) })
  return { key, keyHash }
}

async function storedVersions (worker: Worker): Promise<Array<{ version: string | null, plaintext: boolean, sealed: boolean }>> {
  const { rows } = await worker.db.query<{ key_version: string | null, plaintext: boolean, sealed: boolean }>(
    'SELECT key_version, key IS NOT NULL AS plaintext, sealed_key IS NOT NULL AS sealed FROM content_keys ORDER BY key_hash')
  return rows.map((row) => ({ version: row.key_version, plaintext: row.plaintext, sealed: row.sealed }))
}

describe('content keys sealed at rest (Postgres)', () => {
  let author: KeyPeer
  let reader: KeyPeer
  const workers: Worker[] = []
  const stop = async (worker: Worker): Promise<void> => {
    for (const peer of [author, reader]) await peer.node.hangUp(worker.node.peerId).catch(() => {})
    await worker.stop()
    workers.splice(workers.indexOf(worker), 1)
  }
  const started = async (...args: Parameters<typeof startOn>): Promise<Worker> => {
    const worker = await startOn(...args)
    workers.push(worker)
    await connect(worker, author, reader)
    return worker
  }

  before(async () => {
    author = await keyPeer(await generateKeyPair('Ed25519'))
    reader = await keyPeer(await generateKeyPair('Ed25519'))
  })

  after(async () => {
    await Promise.all(workers.map(async (worker) => { await worker.stop() }))
    await Promise.all([author, reader].map(async (peer) => { await peer?.node.stop() }))
  })

  it('a pg_dump taken with keys stored contains none of their bytes', async () => {
    const database = await createTestDatabase('sealing_dump')
    const worker = await started(database, testSealingSecret('v1'))
    const deposited = [await depositFresh(worker, author, reader), await depositFresh(worker, author, reader), await depositFresh(worker, author, reader)]
    // Served byte-exactly: the keys are really there.
    for (const { key, keyHash } of deposited) assert.deepEqual(await reader.client.getKey(worker.node.peerId, keyHash), key)

    const dump = await pgDump(database)
    // The dump is of the rows that hold them: each key's hash is there (bytea, as hex).
    assert.ok(dump.includes('content_keys'), 'the dump has the content_keys table')
    for (const { keyHash } of deposited) assert.ok(dump.includes(Buffer.from(keyHash).toString('hex')), 'the dump holds each key\'s row')
    assertNoKeyIn(dump, deposited.map(({ key }) => key))
    assert.deepEqual(await storedVersions(worker), deposited.map(() => ({ version: 'v1', plaintext: false, sealed: true })))
    await stop(worker)
  })

  it('rotating the sealing key keeps old keys readable, seals new ones under the new version, and re-seals the old at start', async () => {
    const database = await createTestDatabase('sealing_rotation')
    const v1 = testSealingSecret('v1')
    const v2 = testSealingSecret('v2')

    const first = await started(database, v1)
    const old = [await depositFresh(first, author, reader), await depositFresh(first, author, reader)]
    assert.deepEqual((await storedVersions(first)).map((row) => row.version), ['v1', 'v1'])
    await stop(first)

    // v2 current, v1 kept for reading. The pass at start re-seals the v1 rows under v2.
    const second = await started(database, `${v2},${v1}`)
    for (const { key, keyHash } of old) assert.deepEqual(await reader.client.getKey(second.node.peerId, keyHash), key, 'an old key is served byte-exactly')
    const fresh = await depositFresh(second, author, reader)
    const { rows: [freshRow] } = await second.db.query<{ key_version: string }>('SELECT key_version FROM content_keys WHERE key_hash = $1', [fresh.keyHash])
    assert.equal(freshRow?.key_version, 'v2', 'a new deposit is sealed under the current version')
    assert.deepEqual(await second.keysResealed, { sealedPlaintext: 0, resealed: 2, versionMissing: 0, missingVersions: [], corrupt: 0 })
    assert.deepEqual(await storedVersions(second), [0, 1, 2].map(() => ({ version: 'v2', plaintext: false, sealed: true })), 'no row uses v1 after re-sealing')
    assert.equal(await metricValue(second, /^pharos_content_keys_resealed_total\{from="old-version"\} (\d+)/m), 2)
    for (const { key, keyHash } of [...old, fresh]) assert.deepEqual(await reader.client.getKey(second.node.peerId, keyHash), key)
    await stop(second)

    // v1 removed: everything is still readable, nothing left to re-seal.
    const third = await started(database, v2)
    assert.deepEqual(await third.keysResealed, { sealedPlaintext: 0, resealed: 0, versionMissing: 0, missingVersions: [], corrupt: 0 })
    for (const { key, keyHash } of [...old, fresh]) {
      assert.deepEqual(await reader.client.getKey(third.node.peerId, keyHash), key)
      assert.deepEqual(await author.client.getKey(third.node.peerId, keyHash), key)
    }
    await stop(third)

    // v2 lost too (a new key, none of the old): the keys cannot be opened here. GETKEY says
    // so as `unavailable`, the metrics count it, and the worker keeps answering.
    const fourth = await started(database, testSealingSecret('v3'))
    assert.deepEqual(await fourth.keysResealed, { sealedPlaintext: 0, resealed: 0, versionMissing: 3, missingVersions: ['v2'], corrupt: 0 })
    assert.equal(await metricValue(fourth, /^pharos_content_keys_unopenable (\d+)/m), 3)
    for (const { keyHash } of [...old, fresh]) {
      await assert.rejects(reader.client.getKey(fourth.node.peerId, keyHash), (err: unknown) => err instanceof RemoteError && err.code === 'unavailable' && /sealing key this beacon no longer holds/.test(err.message))
    }
    assert.equal(await metricValue(fourth, /^pharos_keyexchange_requests_total\{outcome="sealing-key-missing"\} (\d+)/m), 3)
    // Still a working key-exchange beacon: a new deposit is sealed under v3 and served; the
    // author's next deposit of an old key mends its row.
    const later = await depositFresh(fourth, author, reader)
    assert.deepEqual(await reader.client.getKey(fourth.node.peerId, later.keyHash), later.key)
    const mended = old[0] ?? assert.fail('two old keys')
    const rule = await signAllowList({ keyHash: mended.keyHash, version: 2, peers: [reader.signer.peerId] }, author.signer)
    await author.client.deposit(fourth.node.peerId, mended.key, rule)
    assert.deepEqual(await reader.client.getKey(fourth.node.peerId, mended.keyHash), mended.key)
    assert.equal((await fetch(`${fourth.httpUrl}/healthz`)).status, 200)
    await stop(fourth)
  })

  it('a worker without a sealing key logs one line, refuses deposit and GETKEY as unavailable, and runs the rest', async () => {
    const database = await createTestDatabase('sealing_off')
    const lines: Array<Record<string, unknown>> = []
    const log = createLogger('info', { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
    const worker = await startOn(database, undefined, log)
    workers.push(worker)
    await connect(worker, author, reader)

    const off = lines.filter((line) => typeof line.msg === 'string' && /key exchange is off/.test(line.msg))
    assert.equal(off.length, 1, 'one start log line says key exchange is off')
    assert.equal(off[0]?.level, 40, 'at warn')
    assert.match(String(off[0]?.msg), /PHAROS_KEY_SEALING_SECRET/, 'naming the key that turns it on')
    assert.equal(lines.find((line) => line.msg === 'pharos beacon started')?.keySealing, 'none: key exchange off')
    assert.equal(worker.logService.keyExchangeRole, false)
    assert.equal(await worker.keysResealed, undefined)

    const key = new Uint8Array(randomBytes(32))
    const keyHash = await keyHashOf(key)
    const rule = await signAllowList({ keyHash, version: 1, peers: [reader.signer.peerId] }, author.signer)
    const refusedAsUnavailable = (err: unknown): boolean => err instanceof RemoteError && err.code === 'unavailable' && /PHAROS_KEY_SEALING_SECRET/.test(err.message)
    await assert.rejects(author.client.deposit(worker.node.peerId, key, rule), refusedAsUnavailable)
    await assert.rejects(reader.client.getKey(worker.node.peerId, keyHash), refusedAsUnavailable)
    assert.equal(await metricValue(worker, /^pharos_keyexchange_requests_total\{outcome="role-off"\} (\d+)/m), 2)
    const { rows } = await worker.db.query<{ n: number }>('SELECT count(*)::int AS n FROM content_keys')
    assert.equal(rows[0]?.n, 0, 'nothing stored')

    // Pinning and the gateway still work: a peer's file is pinned through the Pinning
    // Service API and served back over HTTP.
    const origin = await createContentPeer()
    try {
      const file = new Uint8Array(randomBytes(200_000))
      const cid = await origin.addFile(file)
      const call = httpClient(worker.httpUrl, PIN_TOKEN)
      const added = await call('POST', '/pins', { cid: cid.toString(), origins: origin.multiaddrs() })
      assert.equal(added.status, 202, JSON.stringify(added.body))
      assert.equal((await waitForPin(call, added.body.requestid)).status, 'pinned')
      const car = await fetch(`${worker.httpUrl}/ipfs/${cid.toString()}?format=car`)
      assert.equal(car.status, 200)
      assert.ok((await car.arrayBuffer()).byteLength > file.length, 'the CAR carries the file')
    } finally {
      await origin.stop()
    }
    assert.equal((await fetch(`${worker.httpUrl}/readyz`)).status, 200)
    assert.equal(lines.filter((line) => typeof line.msg === 'string' && /key exchange is off/.test(line.msg)).length, 1, 'still one line: not one per request')
    await stop(worker)
  })

  it('seals plaintext keys stored before sealing at start and clears the plaintext; a sealed blob moved to another row does not open', async () => {
    const database = await createTestDatabase('sealing_plaintext')
    // The database as a worker before migration 012 left it: two keys in the clear.
    const db = await openPostgres(database)
    const legacy: Array<{ key: Uint8Array, keyHash: Uint8Array }> = []
    try {
      await migrate(db, (await loadMigrations()).filter((migration) => migration.version < 12))
      for (let i = 0; i < 2; i++) {
        const key = new Uint8Array(randomBytes(32))
        const keyHash = await keyHashOf(key)
        const rule = await signAllowList({ keyHash, version: 1, peers: [reader.signer.peerId] }, author.signer)
        await db.query('INSERT INTO content_keys (key_hash, author, key, rule, rule_version, readers_indexed) VALUES ($1, $2, $3, $4, 1, false)', [keyHash, author.signer.peerId, key, rule])
        legacy.push({ key, keyHash })
      }
    } finally {
      await db.close()
    }
    const before = await pgDump(database)
    assert.ok(before.includes(Buffer.from(legacy[0]?.key ?? []).toString('hex')), 'the plaintext is in a dump before sealing (the search finds it)')

    const sealing = testSealingSecret('v1')
    const worker = await started(database, sealing)
    assert.deepEqual(await worker.keysResealed, { sealedPlaintext: 2, resealed: 0, versionMissing: 0, missingVersions: [], corrupt: 0 })
    assert.deepEqual(await storedVersions(worker), [{ version: 'v1', plaintext: false, sealed: true }, { version: 'v1', plaintext: false, sealed: true }])
    assert.equal(await metricValue(worker, /^pharos_content_keys_resealed_total\{from="plaintext"\} (\d+)/m), 2)
    for (const { key, keyHash } of legacy) assert.deepEqual(await reader.client.getKey(worker.node.peerId, keyHash), key)
    assertNoKeyIn(await pgDump(database), legacy.map(({ key }) => key))

    // A sealed blob moved to another row does not open there (its key hash is bound into the
    // seal): GETKEY says the stored copy is damaged, counted, and hands out no other post's key.
    const [a, b] = legacy.map(({ keyHash }) => keyHash)
    await worker.db.query(`UPDATE content_keys SET sealed_key = CASE WHEN key_hash = $1 THEN (SELECT sealed_key FROM content_keys WHERE key_hash = $2)
      ELSE (SELECT sealed_key FROM content_keys WHERE key_hash = $1) END WHERE key_hash IN ($1, $2)`, [a, b])
    for (const { keyHash } of legacy) {
      await assert.rejects(reader.client.getKey(worker.node.peerId, keyHash), (err: unknown) => err instanceof RemoteError && err.code === 'unavailable' && /damaged/.test(err.message))
    }
    assert.equal(await metricValue(worker, /^pharos_keyexchange_requests_total\{outcome="sealed-key-corrupt"\} (\d+)/m), 2)
    await stop(worker)
    // The pass at start leaves them as they are, counted, and the start goes on.
    const next = await started(database, testSealingSecret('v2') + ',' + sealing)
    assert.deepEqual(await next.keysResealed, { sealedPlaintext: 0, resealed: 0, versionMissing: 0, missingVersions: [], corrupt: 2 })
    await stop(next)
  })

  it('the embedded default (no DATABASE_URL, no secret) generates a sealing key into its data dir and keeps it', async () => {
    const env = await inProcessEnv({ PHAROS_NETWORK: NETWORK })
    delete env.PHAROS_KEY_SEALING_SECRET
    const lines: Array<Record<string, unknown>> = []
    const log = createLogger('info', { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
    const file = join(env.PHAROS_DATA_DIR ?? assert.fail('a data dir'), 'key-sealing-secret')

    const first = await startWorker(loadConfig(env), log)
    workers.push(first)
    await connect(first, author, reader)
    assert.equal(first.mode, 'embedded')
    assert.equal(first.logService.keyExchangeRole, true)
    assert.equal(lines.find((line) => line.msg === 'pharos beacon started')?.keySealing, file, 'the start log says where the key is')
    assert.equal(lines.filter((line) => typeof line.msg === 'string' && /key exchange is off/.test(line.msg)).length, 0)
    assert.equal(statSync(file).mode & 0o777, 0o600, 'readable by the worker\'s user only')
    const stored = parseSealingKeys((await readFile(file, 'utf8')).trim())
    assert.ok(stored.ok && stored.value[0]?.version === 'v1' && stored.value[0].key.length === 32, 'v1:<32 random bytes>')
    assert.deepEqual(await first.keysResealed, { sealedPlaintext: 0, resealed: 0, versionMissing: 0, missingVersions: [], corrupt: 0 }, 'the pass at start ran on PGlite')
    const deposited = await depositFresh(first, author, reader)
    assert.deepEqual(await storedVersions(first), [{ version: 'v1', plaintext: false, sealed: true }])
    await stop(first)

    // Restarted on the same data dir: the same key, so what it sealed still opens.
    const second = await startWorker(loadConfig(env), testLogger())
    workers.push(second)
    await connect(second, author, reader)
    assert.deepEqual(await reader.client.getKey(second.node.peerId, deposited.keyHash), deposited.key)
    await stop(second)

    // Moved to a secret from the operator's store, the generated key kept after it (docs/logs.md):
    // the file is no longer read, and the pass re-seals under the new key, on PGlite.
    const third = await startWorker(loadConfig({ ...env, PHAROS_KEY_SEALING_SECRET: `${testSealingSecret('v2')},${(await readFile(file, 'utf8')).trim()}` }), testLogger())
    workers.push(third)
    await connect(third, author, reader)
    assert.deepEqual(await third.keysResealed, { sealedPlaintext: 0, resealed: 1, versionMissing: 0, missingVersions: [], corrupt: 0 })
    assert.deepEqual(await storedVersions(third), [{ version: 'v2', plaintext: false, sealed: true }])
    assert.deepEqual(await reader.client.getKey(third.node.peerId, deposited.keyHash), deposited.key)
    await stop(third)
  })

  it('an embedded worker whose generated key file was damaged stops at start naming the key and the file', async () => {
    const env = await inProcessEnv({ PHAROS_NETWORK: NETWORK })
    delete env.PHAROS_KEY_SEALING_SECRET
    const file = join(env.PHAROS_DATA_DIR ?? assert.fail('a data dir'), 'key-sealing-secret')
    await writeFile(file, 'v1:not-32-bytes\n', { mode: 0o600 })
    await assert.rejects(startWorker(loadConfig(env), testLogger()), (err: unknown) =>
      err instanceof ConfigError && err.key === 'PHAROS_KEY_SEALING_SECRET' && err.message.includes(file) && !err.message.includes('not-32-bytes'))
  })
})
