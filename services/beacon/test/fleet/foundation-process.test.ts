/**
 * The worker as operators run it: its own process, started by main.ts with env and flags.
 * Bad config stops it naming the key; it serves on PGlite and on Postgres; SIGTERM drains
 * (/readyz 503 first) and exits 0; a restart keeps the peer ID.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { PUBLIC_FLEET_SECRETS } from '../../src/config/public-secrets.ts'
import { schema, flagFor } from '../../src/config/schema.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { runMain, runProcess, runScript, spawnWorker, stopWorker, workerEnv } from '@pharos/testing/worker-process.ts'
import type { ProcessResult } from '@pharos/testing/worker-process.ts'

const EXIT_CONFIG = 78

describe('configuration at start', () => {
  const badValues: Array<[string, string, RegExp]> = [
    ['PHAROS_HTTP_PORT', 'eighty', /an integer from 0 to 65535/],
    ['PHAROS_MAX_CONNECTIONS', '0', /an integer from 1 to 1000000/],
    ['PHAROS_WS_MAX_PAYLOAD_BYTES', String(2 * 1024 * 1024), /an integer from 65537 to 1048576/],
    ['PHAROS_LOG_LEVEL', 'loud', /one of fatal, error, warn, info, debug, trace, silent/],
    ['PHAROS_NETWORK', 'Has Spaces', /lowercase letters/],
    ['DATABASE_URL', 'mysql://x', /a URL with scheme postgres or postgresql/],
    ['PHAROS_ANNOUNCE', 'not-a-multiaddr', /multiaddrs/]
  ]
  for (const [key, value, allowed] of badValues) {
    it(`stops with exit ${EXIT_CONFIG} naming ${key} when it is ${JSON.stringify(value)}`, async () => {
      const result = await runMain(await workerEnv({ [key]: value }))
      assert.equal(result.code, EXIT_CONFIG)
      assert.match(result.stderr, new RegExp(`invalid configuration: ${key}=`))
      assert.match(result.stderr, allowed)
      assert.equal(result.stdout, '', 'nothing started')
    })
  }

  it('reads flags as well as env, flags winning, and names a bad flag value by its key', async () => {
    const result = await runMain(await workerEnv({ PHAROS_HTTP_PORT: '8080' }), ['--http-port', '99999'])
    assert.equal(result.code, EXIT_CONFIG)
    assert.match(result.stderr, /PHAROS_HTTP_PORT="99999"/)
  })

  it('refuses an unknown flag', async () => {
    const result = await runMain(await workerEnv(), ['--max-conections', '5'])
    assert.equal(result.code, EXIT_CONFIG)
    assert.match(result.stderr, /--max-conections/)
  })

  it('hides secrets in the error', async () => {
    const result = await runMain(await workerEnv({ PHAROS_PEER_KEY: 'c2VjcmV0LW5vdC1hLWtleQ==' }))
    assert.equal(result.code, EXIT_CONFIG)
    assert.match(result.stderr, /PHAROS_PEER_KEY=\(hidden\)/)
    assert.doesNotMatch(result.stderr, /c2VjcmV0/)
  })

  it('refuses REDIS_URL without DATABASE_URL', async () => {
    const result = await runMain(await workerEnv({ REDIS_URL: 'redis://127.0.0.1:1' }))
    assert.equal(result.code, EXIT_CONFIG)
    assert.match(result.stderr, /REDIS_URL/)
  })

  it('refuses the fleet secret the quick start once published when it announces beyond loopback, and starts with it on loopback alone', async () => {
    const published = [...PUBLIC_FLEET_SECRETS][0] ?? assert.fail()
    const refused = await runMain(await workerEnv({ PHAROS_FLEET_SECRET: published, PHAROS_ANNOUNCE: '/ip4/203.0.113.7/tcp/4001' }))
    assert.equal(refused.code, EXIT_CONFIG)
    assert.match(refused.stderr, /invalid configuration: PHAROS_FLEET_SECRET=\(hidden\); allowed: a secret of your own/)
    assert.match(refused.stderr, /published default/)
    assert.equal(refused.stdout, '', 'nothing started')

    const loopback = await spawnWorker(await workerEnv({ PHAROS_FLEET_SECRET: published, PHAROS_WORKER_NAME: 'laptop' }))
    try {
      const started = loopback.lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((record) => record.msg === 'pharos beacon started')
      assert.equal(started?.keySource, 'fleet-secret')
      assert.ok(loopback.multiaddrs.every((addr) => addr.startsWith('/ip4/127.0.0.1/')), 'it listens on loopback only')
    } finally {
      await stopWorker(loopback)
    }
  })

  it('--help lists every key with its flag and default', async () => {
    const result = await runMain(await workerEnv(), ['--help'])
    assert.equal(result.code, 0)
    for (const spec of Object.values(schema)) {
      assert.ok(result.stdout.includes(`${spec.env}  (${flagFor(spec.env)})`), `${spec.env} listed`)
      assert.ok(result.stdout.includes(spec.help), `${spec.env} explained`)
    }
  })
})

async function getJson (url: string, token?: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  return { status: response.status, body: await response.json() as Record<string, unknown> }
}

describe('worker process', () => {
  it('starts on embedded PGlite, serves, and keeps its peer ID across a restart', async () => {
    const env = await workerEnv()
    const first = await spawnWorker(env)
    try {
      assert.ok(first.multiaddrs.length >= 2)
      assert.ok(first.multiaddrs.every((addr) => addr.endsWith(`/p2p/${first.peerId}`)), 'multiaddrs carry /p2p/<peer id>')
      assert.ok(first.multiaddrs.some((addr) => addr.includes('/ws/')))
      assert.equal((await getJson(`${first.httpUrl}/readyz`)).status, 200)
      const token = (await readFile(join(env.PHAROS_DATA_DIR ?? '', 'admin-token'), 'utf8')).trim()
      const node = await getJson(`${first.httpUrl}/v1/node`, token)
      assert.equal(node.status, 200)
      assert.equal(node.body.peerId, first.peerId)
      first.child.kill('SIGTERM')
      assert.equal((await first.exited).code, 0)
    } finally {
      await stopWorker(first)
    }
    const second = await spawnWorker(env)
    try {
      assert.equal(second.peerId, first.peerId, 'same data dir, same identity')
    } finally {
      await stopWorker(second)
    }
  })

  it('starts on Postgres with migrations applied, and refuses a second worker without Redis', async () => {
    const databaseUrl = await createTestDatabase('foundation')
    const token = 'process-test-token-0123456789'
    const worker = await spawnWorker(await workerEnv({ DATABASE_URL: databaseUrl, PHAROS_ADMIN_TOKENS: token }))
    try {
      const ready = await getJson(`${worker.httpUrl}/readyz`)
      assert.deepEqual(ready, { status: 200, body: { ready: true, status: 'ready', checks: { p2p: 'ok', storage: 'ok', overload: 'ok' } } })
      assert.equal((await getJson(`${worker.httpUrl}/v1/node`, token)).body.peerId, worker.peerId)
      const started = worker.lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((record) => record.msg === 'storage ready')
      assert.equal(started?.engine, 'postgres')

      const second = await runMain(await workerEnv({ DATABASE_URL: databaseUrl, PHAROS_ADMIN_TOKENS: token }))
      assert.notEqual(second.code, 0)
      assert.match(second.stdout + second.stderr, /another Pharos worker already runs on this DATABASE_URL without REDIS_URL/)
    } finally {
      await stopWorker(worker)
    }
  })

  it('on SIGTERM answers /readyz 503 before it exits 0', async () => {
    const worker = await spawnWorker(await workerEnv({ PHAROS_SHUTDOWN_READINESS_DELAY_MS: '1500' }))
    try {
      assert.equal((await getJson(`${worker.httpUrl}/readyz`)).status, 200)
      worker.child.kill('SIGTERM')
      let sawDraining = false
      const deadline = Date.now() + 5000
      while (!sawDraining && Date.now() < deadline) {
        const ready = await getJson(`${worker.httpUrl}/readyz`).catch(() => undefined)
        if (ready?.status === 503) {
          sawDraining = true
          assert.equal((ready.body.checks as Record<string, string>).draining, 'shutting down')
        }
      }
      assert.equal(sawDraining, true, '/readyz answered 503 while draining')
      const exit = await worker.exited
      assert.deepEqual(exit, { code: 0, signal: null })
    } finally {
      await stopWorker(worker)
    }
  })
})

describe('README peer example', () => {
  it('bootstraps through a worker and gets a relayed address on it', async () => {
    const admin = 'example-admin-token-0123456789'
    const worker = await spawnWorker(await workerEnv({ PHAROS_ADMIN_TOKENS: admin }))
    try {
      const tcpAddr = worker.multiaddrs.find((addr) => addr.startsWith('/ip4/127.0.0.1/') && !addr.includes('/ws/')) ?? assert.fail('no TCP address')
      // Reservations go to registered accounts only: register the example's key first.
      const key = await generateKeyPair('Ed25519')
      const registered = await fetch(`${worker.httpUrl}/v1/accounts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ peerId: peerIdFromPrivateKey(key).toString() })
      })
      assert.equal(registered.status, 201, await registered.text())
      const example = fileURLToPath(new URL('../../../peer/examples/bootstrap-and-relay.ts', import.meta.url))
      const result = await runScript(example, [tcpAddr], { PATH: process.env.PATH ?? '', PEER_KEY: Buffer.from(privateKeyToProtobuf(key)).toString('base64') })
      assert.equal(result.code, 0, result.stderr)
      const printed = JSON.parse(result.stdout) as { peerId: string, relayed: string }
      assert.equal(printed.peerId, peerIdFromPrivateKey(key).toString())
      assert.equal(printed.relayed, `${tcpAddr}/p2p-circuit/p2p/${printed.peerId}`)
    } finally {
      await stopWorker(worker)
    }
  })

  it('runs as the README says, `npm run example:bootstrap-and-relay -- <multiaddr> <admin url> <token>`, registering its own key, on the Node npm finds', async () => {
    const admin = 'example-admin-token-0123456789'
    const worker = await spawnWorker(await workerEnv({ PHAROS_ADMIN_TOKENS: admin }))
    try {
      const tcpAddr = worker.multiaddrs.find((addr) => addr.startsWith('/ip4/127.0.0.1/') && !addr.includes('/ws/')) ?? assert.fail('no TCP address')
      // The PATH a shell has: no node_modules/.bin, so `node` is whatever the machine has; npm
      // puts the node@22 devDependency first for the script.
      const shellPath = (process.env.PATH ?? '').split(':').filter((dir) => !dir.endsWith('node_modules/.bin')).join(':')
      const result = await runCommand('npm', ['run', '--silent', 'example:bootstrap-and-relay', '--', tcpAddr, worker.httpUrl, admin], { PATH: shellPath, HOME: process.env.HOME ?? '' })
      assert.equal(result.code, 0, result.stderr)
      const printed = JSON.parse(result.stdout) as { peerId: string, relayed: string }
      assert.equal(printed.relayed, `${tcpAddr}/p2p-circuit/p2p/${printed.peerId}`)
      const accounts = await getJson(`${worker.httpUrl}/v1/accounts`, admin)
      assert.ok((accounts.body.accounts as Array<{ peerId: string }>).some((account) => account.peerId === printed.peerId), 'the example registered its key')
    } finally {
      await stopWorker(worker)
    }
  })

  it('says, without a key or an admin token, that reservations need a registered account', async () => {
    const example = fileURLToPath(new URL('../../../peer/examples/bootstrap-and-relay.ts', import.meta.url))
    const result = await runScript(example, ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /registered accounts only/)
  })
})

/** Runs a command from the repository root to completion. */
async function runCommand (command: string, args: string[], env: Record<string, string>): Promise<ProcessResult> {
  return await runProcess(command, args, { env, cwd: fileURLToPath(new URL('../../../../', import.meta.url)) })
}
