/**
 * A log entry's pin waits for its author, for a while: while the post body cannot be fetched,
 * its attempts stall and are retried past PHAROS_PIN_MAX_ATTEMPTS (an ordinary pin would
 * fail), and once the author serves the body the entry is pinned. Its patience ends at
 * PHAROS_ENTRY_PIN_MAX_ATTEMPTS: a body nobody serves fails the pin (issue 17, item 10), so
 * an author cannot keep pin slots busy for good with entries whose content never comes.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { MemoryBlockstore } from 'blockstore-core'
import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { createPharosPeer } from '@pharos/peer/pharos-peer.ts'
import type { PharosPeer } from '@pharos/peer/pharos-peer.ts'
import { SyncClient } from '@pharos/net/clients/sync-client.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'
import { waitForValue } from '@pharos/testing/wait.ts'

const NETWORK = 'pharos-entry-pins'
const TOKEN = 'entry-pins-test-admin-token-0123456789'
/** Room for the first test to see three attempts and release the body well before the last. */
const ENTRY_ATTEMPTS = 6

/** A peer's blockstore that, while `withholding`, claims to lack every block but its log entries' (it serves no post body). */
class WithholdingBlockstore extends MemoryBlockstore {
  withholding = false
  readonly bodies = new Set<string>()

  override async has (cid: CID, options?: AbortOptions): Promise<boolean> {
    return this.withheld(cid) ? false : await super.has(cid, options)
  }

  override async * get (cid: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
    if (this.withheld(cid)) throw Object.assign(new Error(`withheld ${cid.toString()}`), { name: 'NotFoundError' })
    yield * super.get(cid, options)
  }

  private withheld (cid: CID): boolean {
    return this.withholding && this.bodies.has(cid.toString())
  }
}

describe('a log entry\'s pin', () => {
  let worker: Worker
  let peer: PharosPeer
  const blockstore = new WithholdingBlockstore()

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({
      DATABASE_URL: await createTestDatabase('entry_pins'),
      PHAROS_NETWORK: NETWORK,
      PHAROS_ADMIN_TOKENS: TOKEN,
      PHAROS_PIN_POLL_INTERVAL_MS: '100',
      PHAROS_PIN_MAX_ATTEMPTS: '1',
      PHAROS_ENTRY_PIN_MAX_ATTEMPTS: String(ENTRY_ATTEMPTS),
      PHAROS_PIN_STALL_TIMEOUT_MS: '1000',
      PHAROS_PIN_RETRY_BASE_MS: '100',
      PHAROS_PIN_RETRY_MAX_MS: '300'
    })), createLogger('silent'))
    const addr = worker.node.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/') && !a.toString().includes('/ws')) ?? assert.fail('no TCP address')
    peer = await createPharosPeer({ privateKey: await generateKeyPair('Ed25519'), bootstrap: [addr.toString()], network: NETWORK, blockstore })
    await worker.accounts.add(peer.peerId.toString(), 'author')
    await peer.start()
  })

  after(async () => {
    await peer?.stop()
    await worker?.stop()
  })

  const pinOf = async (entry: CID): Promise<{ status: string, attempts: number, failure_reason: string | null } | undefined> => {
    const { rows } = await worker.db.query<{ status: string, attempts: number, failure_reason: string | null }>(
      'SELECT p.status, p.attempts, p.failure_reason FROM log_entries e JOIN pins p ON p.id = e.pin_id WHERE e.cid = $1', [entry.bytes])
    return rows[0]
  }

  it('is retried past PHAROS_PIN_MAX_ATTEMPTS while the body is missing, and pinned once the author serves it', async () => {
    blockstore.withholding = true
    const entry = await peer.publishPost({ text: 'served later' })
    blockstore.bodies.add(entry.content.toString())
    await peer.waitUntilHeld([entry.cid], { state: 'stored', timeoutMs: 20_000 })
    const retried = await waitForValue('the entry pin to be retried past its one allowed attempt', 20_000, async () => {
      const pin = await pinOf(entry.cid)
      return pin !== undefined && pin.attempts >= 3 ? pin : undefined
    })
    assert.notEqual(retried.status, 'failed', 'an entry pin does not run out of attempts')
    assert.notEqual(retried.status, 'pinned', 'the body was withheld, so it cannot be pinned yet')

    assert.ok(retried.attempts <= ENTRY_ATTEMPTS, 'still within PHAROS_ENTRY_PIN_MAX_ATTEMPTS')

    blockstore.withholding = false
    await peer.waitUntilHeld([entry.cid], { state: 'pinned', timeoutMs: 20_000 })
    assert.equal((await pinOf(entry.cid))?.status, 'pinned')
  })

  it('fails after PHAROS_ENTRY_PIN_MAX_ATTEMPTS when the body never comes, naming the key; the entry stays stored', async () => {
    blockstore.withholding = true
    const entry = await peer.publishPost({ text: 'never served' })
    blockstore.bodies.add(entry.content.toString())
    const failed = await waitForValue('the entry pin to run out of attempts', 30_000, async () => {
      const pin = await pinOf(entry.cid)
      return pin?.status === 'failed' ? pin : undefined
    })
    assert.equal(failed.attempts, ENTRY_ATTEMPTS)
    assert.match(failed.failure_reason ?? '', /PHAROS_ENTRY_PIN_MAX_ATTEMPTS/)
    const [status] = await new SyncClient(peer.libp2p, NETWORK, 10_000).status(worker.node.peerId, [entry.cid])
    assert.equal(status, 'stored', 'the entry itself is kept; only its content is not held')
    const metrics = await (await fetch(`${worker.httpUrl}/metrics`)).text()
    assert.match(metrics, /^pharos_limit_blocked_total\{limit="PHAROS_ENTRY_PIN_MAX_ATTEMPTS"\} 1$/m)
  })
})
