/**
 * The pinning promise end to end, on real libp2p peers and a real worker on Postgres: author
 * A publishes 50 posts with attachments through the SDK and the worker pins all of them; A
 * goes offline; peer B joins later, syncs A's log from the worker, and fetches and verifies
 * every entry and every attachment byte for byte.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { generateKey } from '../src/keys.ts'
import { createPharosPeer } from '../src/pharos-peer.ts'
import type { PharosPeer, PublishedEntry } from '../src/pharos-peer.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { registerAccount, startWorker } from './helpers/worker.ts'
import type { WorkerProcess } from './helpers/worker.ts'

const POSTS = 50

describe('an author offline, its log served by the worker', () => {
  let worker: WorkerProcess
  const peers: PharosPeer[] = []

  before(async () => { worker = await startWorker({ DATABASE_URL: await createTestDatabase('offline_author'), PHAROS_PIN_POLL_INTERVAL_MS: '200' }) })
  after(async () => {
    await Promise.all(peers.map(async (peer) => { await peer.stop() }))
    await worker.stop()
  })

  it(`pins ${POSTS} posts with attachments, and a peer that joins after the author left fetches and verifies them all`, async () => {
    const author = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [worker.tcpAddr] })
    peers.push(author)
    await registerAccount(worker, author.peerId.toString(), 'author')
    await author.start()

    // Every tenth attachment spans several UnixFS blocks (300 KiB); the rest are one block.
    const sent: Array<{ entry: PublishedEntry, text: string, files: Array<{ name: string, bytes: Uint8Array }> }> = []
    for (let i = 0; i < POSTS; i++) {
      const files = [{ name: `photo-${i}.bin`, bytes: new Uint8Array(randomBytes(i % 10 === 0 ? 300 * 1024 : 2048 + i)) }]
      const text = `post ${i}: ${randomBytes(8).toString('hex')}`
      sent.push({ entry: await author.publishPost({ text, attachments: files }), text, files })
    }
    await author.waitUntilHeld(sent.map(({ entry }) => entry.cid), { timeoutMs: 180_000 })
    await author.stop()

    const summary = await (await fetch(`${worker.httpUrl}/v1/authors/${author.peerId.toString()}`, { headers: { authorization: `Bearer ${worker.adminToken}` } })).json() as Record<string, unknown>
    assert.equal(summary.entries, POSTS)
    assert.equal(summary.seq, POSTS - 1)
    assert.equal(summary.forks, 0)
    const attachmentBytes = sent.reduce((sum, { files }) => sum + files.reduce((size, file) => size + file.bytes.length, 0), 0)
    assert.ok(Number(summary.bytesPinned) >= attachmentBytes, `bytes pinned ${String(summary.bytesPinned)} cover the ${attachmentBytes} attachment bytes`)

    const reader = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [worker.tcpAddr] })
    peers.push(reader)
    await registerAccount(worker, reader.peerId.toString(), 'reader')
    await reader.start()
    assert.equal(reader.libp2p.getConnections(author.peerId).length, 0, 'the author is gone')
    const heard = new Set<string>()
    reader.onEntry((block) => { heard.add(block.cid.toString()) })
    // Following asks the sync topic too, and the worker's answer (its head, announced) is
    // fetched alongside the sync below: either may fetch the entries first, and each is
    // heard once, whichever did.
    reader.follow([author.peerId.toString()])
    const report = await reader.sync()
    assert.deepEqual(report.failed, [])
    await waitFor('every entry to be fetched and heard', () => heard.size === POSTS)
    assert.deepEqual([...heard].sort(), sent.map(({ entry }) => entry.cid.toString()).sort())

    const log = await reader.fetchLog(author.peerId.toString())
    assert.deepEqual(log.map((block) => block.cid.toString()), sent.map(({ entry }) => entry.cid.toString()).reverse(), 'the whole log, head first')
    for (const [i, block] of [...log].reverse().entries()) {
      const post = await reader.fetchPost(block, { signal: AbortSignal.timeout(60_000) })
      const expected = sent[i] ?? assert.fail()
      assert.equal(post.text, expected.text)
      assert.deepEqual(post.attachments.map(({ name, bytes }) => ({ name, bytes: Buffer.from(bytes) })), expected.files.map(({ name, bytes }) => ({ name, bytes: Buffer.from(bytes) })))
    }
  })
})
