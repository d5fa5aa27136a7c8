/**
 * Private posts end to end (issue 23, items 3 and 5) against a real worker (its own process,
 * on the throwaway Postgres and Redis of scripts/with-services.sh) and real peers on loopback:
 * the body and attachments are encrypted before anything leaves the author, an allowed reader
 * decrypts them byte for byte, anyone else gets KeyDeniedError, and the beacon holds the key
 * only when the author allowed it; without it, the author or another allowed reader that is
 * online hands the key out. The CLI prints the denial per post and exits 1.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import { decodeKeyHashParam, keyHashOf } from '@pharos/protocol/log/index.ts'
import { createTestDatabase, queryTestDatabase, testFleet } from '@pharos/testing/databases.ts'
import { collectBytes } from '../src/bytes.ts'
import { runCli } from '../src/cli.ts'
import { KeyDeniedError } from '../src/errors.ts'
import { generateKey, saveKeyFile } from '../src/keys.ts'
import type { PharosPeer, PublishedEntry } from '../src/pharos-peer.ts'
import { startPeer } from './helpers/peers.ts'
import { registerAccount, startWorker, tempDir } from './helpers/worker.ts'
import type { WorkerProcess } from './helpers/worker.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

/** Whether `needle` occurs in `haystack`, byte for byte. */
function contains (haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(Buffer.from(needle)) !== -1
}

describe('private posts', () => {
  let worker: WorkerProcess
  let databaseUrl: string
  const peers: PharosPeer[] = []

  before(async () => {
    databaseUrl = await createTestDatabase('private_posts')
    worker = await startWorker(testFleet()({ DATABASE_URL: databaseUrl, PHAROS_ACCOUNTS_REFRESH_MS: '1000' }))
  })
  after(async () => {
    await Promise.all(peers.map(async (peer) => { await peer.stop() }))
    await worker.stop()
  })

  /** A registered account's key, not yet online. */
  const account = async (): Promise<{ privateKey: Awaited<ReturnType<typeof generateKey>>, id: string }> => {
    const privateKey = await generateKey()
    const id = peerIdFromPrivateKey(privateKey).toString()
    await registerAccount(worker, id)
    return { privateKey, id }
  }
  const online = async (key: { privateKey: Awaited<ReturnType<typeof generateKey>> }): Promise<PharosPeer> => {
    const peer = await startPeer({ privateKey: key.privateKey, bootstrap: [worker.tcpAddr] })
    peers.push(peer)
    return peer
  }

  /** A post with a marker in its text and in its attachment, so its plaintext can be searched for. */
  const secretPost = (label: string): { text: string, attachment: Uint8Array, marker: Uint8Array } => {
    const marker = `PLAINTEXT-MARKER-${label}-${Math.random().toString(36).slice(2)}`
    return { text: `hello ${marker}`, attachment: utf8(`file bytes ${marker} and more`), marker: utf8(marker) }
  }

  /** The key rows the beacon's database holds for this post's key hash. */
  const beaconKeyRows = async (published: PublishedEntry): Promise<number> => {
    const keyHash = decodeKeyHashParam(published.block.entry.params.enckey)
    assert.ok(keyHash !== undefined, 'a private entry carries params.enckey')
    const rows = await queryTestDatabase<{ n: string }>(databaseUrl, 'SELECT count(*)::text AS n FROM content_keys WHERE key_hash = $1', [keyHash])
    return Number(rows[0]?.n)
  }

  /** The CAR the worker's gateway serves for `cid` contains the stored (sealed) bytes, and no marker. */
  const assertGatewayHasNoPlaintext = async (cid: CID, sealedBlocks: Uint8Array[], marker: Uint8Array): Promise<void> => {
    const response = await fetch(`${worker.httpUrl}/ipfs/${cid.toString()}?format=car`, { headers: { accept: 'application/vnd.ipld.car' } })
    assert.equal(response.status, 200, `gateway CAR for ${cid.toString()}`)
    const car = new Uint8Array(await response.arrayBuffer())
    for (const block of sealedBlocks) assert.ok(contains(car, block), 'the CAR carries the post\'s stored blocks')
    assert.ok(!contains(car, marker), 'the CAR carries no plaintext')
  }

  const publishAndPin = async (author: PharosPeer, post: { text: string, attachment: Uint8Array }, allow: string[], beacons: boolean): Promise<PublishedEntry> => {
    const published = await author.publishPost({ text: post.text, attachments: [{ name: 'secret.txt', bytes: post.attachment }], private: { allow, beacons } })
    await author.waitUntilHeld([published.cid], { state: 'pinned', timeoutMs: 120_000 })
    return published
  }

  const assertDecrypts = async (reader: PharosPeer, author: string, published: PublishedEntry, post: { text: string, attachment: Uint8Array }): Promise<void> => {
    const log = await reader.fetchLog(author)
    const block = log.find((candidate) => candidate.cid.equals(published.cid))
    assert.ok(block !== undefined, 'the reader has the entry')
    const read = await reader.fetchPost(block)
    assert.equal(read.text, post.text)
    assert.equal(read.attachments.length, 1)
    assert.equal(read.attachments[0]?.name, 'secret.txt')
    assert.deepEqual(read.attachments[0]?.bytes, post.attachment)
    assert.deepEqual(read.private?.keyHash, decodeKeyHashParam(published.block.entry.params.enckey))
  }

  /** The stored blocks: the private post block and the sealed attachment (one raw leaf). */
  const storedBlocks = async (author: PharosPeer, published: PublishedEntry): Promise<Uint8Array[]> => {
    const { decodePrivatePostBlock } = await import('../src/post.ts')
    const block = await collectBytes(author.helia.blockstore.get(published.content))
    const files = decodePrivatePostBlock(block, published.content).files
    assert.equal(files.length, 1)
    return [block, await collectBytes(author.helia.blockstore.get(files[0] as CID))]
  }

  it('with beacons allowed: the allowed reader decrypts byte for byte, a stranger is denied by rule, the gateway serves no plaintext', async () => {
    const [authorKey, readerKey, strangerKey] = await Promise.all([account(), account(), account()])
    const author = await online(authorKey)
    const post = secretPost('beacons')
    const published = await publishAndPin(author, post, [readerKey.id], true)
    assert.equal(published.private?.deposited, true)
    assert.deepEqual(published.private?.keyHash, decodeKeyHashParam(published.block.entry.params.enckey))
    assert.equal(await beaconKeyRows(published), 1, 'the beacon holds the key the author deposited')
    await assertGatewayHasNoPlaintext(published.cid, await storedBlocks(author, published), post.marker)

    const reader = await online(readerKey)
    await assertDecrypts(reader, authorKey.id, published, post)
    const stranger = await online(strangerKey)
    const [block] = await stranger.fetchLog(authorKey.id)
    assert.ok(block !== undefined)
    await assert.rejects(stranger.fetchPost(block), (err: unknown) => err instanceof KeyDeniedError && err.code === 'not-entitled')
  })

  it('with beacons refused: no beacon holds the key, and the reader gets it from the author, online', async () => {
    const [authorKey, readerKey, strangerKey] = await Promise.all([account(), account(), account()])
    const author = await online(authorKey)
    const post = secretPost('author-online')
    // The reader is offline when the post goes out: it gets no push, it has to ask.
    const published = await publishAndPin(author, post, [readerKey.id], false)
    assert.equal(published.private?.deposited, false)
    assert.deepEqual(published.private?.pushedTo, [])
    assert.equal(await beaconKeyRows(published), 0, 'no beacon holds a key the author kept from beacons')
    await assertGatewayHasNoPlaintext(published.cid, await storedBlocks(author, published), post.marker)

    const reader = await online(readerKey)
    await reader.libp2p.dial(author.libp2p.getMultiaddrs())
    await assertDecrypts(reader, authorKey.id, published, post)
    const stranger = await online(strangerKey)
    await stranger.libp2p.dial(author.libp2p.getMultiaddrs())
    const [block] = await stranger.fetchLog(authorKey.id)
    assert.ok(block !== undefined)
    await assert.rejects(stranger.fetchPost(block), (err: unknown) => err instanceof KeyDeniedError && err.code === 'not-entitled')
    assert.equal(await beaconKeyRows(published), 0)
  })

  it('with beacons refused and the author offline: another allowed reader the key was pushed to hands it out', async () => {
    const [authorKey, holderKey, readerKey, strangerKey] = await Promise.all([account(), account(), account(), account()])
    const author = await online(authorKey)
    const holder = await online(holderKey)
    await author.libp2p.dial(holder.libp2p.getMultiaddrs())
    const post = secretPost('author-offline')
    const published = await publishAndPin(author, post, [holderKey.id, readerKey.id], false)
    assert.deepEqual(published.private?.pushedTo, [holderKey.id], 'the online allowed reader took the pushed key')
    await author.stop()
    assert.equal(await beaconKeyRows(published), 0, 'no beacon holds a key the author kept from beacons')

    const reader = await online(readerKey)
    await reader.libp2p.dial(holder.libp2p.getMultiaddrs())
    await assertDecrypts(reader, authorKey.id, published, post)
    // The holder refuses the stranger by rule when asked directly; a holder answering the topic
    // stays silent to a requester it refuses (the requester field may be forged), so a stranger
    // that reaches no holder directly learns only that no holder gave it the key.
    const stranger = await online(strangerKey)
    await stranger.libp2p.dial(holder.libp2p.getMultiaddrs())
    const [block] = await stranger.fetchLog(authorKey.id)
    assert.ok(block !== undefined)
    await assert.rejects(stranger.fetchPost(block), (err: unknown) => err instanceof KeyDeniedError && (err.code === 'not-entitled' || err.code === 'no-holder-online'))
  })

  it('pharos-peer publishes privately, fetch decrypts for an allowed key, and prints the denial per post and exits 1 for another', async () => {
    const work = await tempDir()
    const keyFile = async (name: string): Promise<{ file: string, id: string }> => {
      const file = join(work, `${name}.json`)
      const privateKey = await generateKey()
      await saveKeyFile(file, privateKey)
      const id = peerIdFromPrivateKey(privateKey).toString()
      await registerAccount(worker, id)
      return { file, id }
    }
    const [author, reader, stranger] = await Promise.all([keyFile('author'), keyFile('reader'), keyFile('stranger')])
    const run = async (...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> => {
      let stdout = ''
      let stderr = ''
      const code = await runCli(argv, { stdout: (text) => { stdout += text }, stderr: (text) => { stderr += text } })
      return { code, stdout, stderr }
    }
    const marker = `CLI-MARKER-${Math.random().toString(36).slice(2)}`
    await import('node:fs/promises').then(async ({ writeFile }) => { await writeFile(join(work, 'note.txt'), `attached ${marker}`) })
    const publish = await run('publish', '--key', author.file, '--bootstrap', worker.tcpAddr, '--text', `private ${marker}`, '--file', join(work, 'note.txt'), '--private', '--allow', reader.id)
    assert.equal(publish.code, 0, publish.stderr)
    const usage = await run('publish', '--key', author.file, '--bootstrap', worker.tcpAddr, '--text', 'x', '--allow', reader.id)
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /--allow needs --private/)

    const readerOut = join(work, 'reader-out')
    const read = await run('fetch', '--key', reader.file, '--bootstrap', worker.tcpAddr, '--author', author.id, '--out', readerOut)
    assert.equal(read.code, 0, read.stderr)
    const cid = publish.stdout.trim()
    const postJson = JSON.parse(await readFile(join(readerOut, 'posts', `0-${cid}.json`), 'utf8')) as { text: string, private?: boolean }
    assert.equal(postJson.text, `private ${marker}`)
    assert.equal(postJson.private, true)
    assert.equal(await readFile(join(readerOut, 'attachments', '0', 'note.txt'), 'utf8'), `attached ${marker}`)

    const strangerOut = join(work, 'stranger-out')
    const denied = await run('fetch', '--key', stranger.file, '--bootstrap', worker.tcpAddr, '--author', author.id, '--out', strangerOut)
    assert.equal(denied.code, 1)
    assert.match(denied.stderr, new RegExp(`post 0 ${cid}: key denied \\(not-entitled\\): not on the author's allow-list`))
    assert.equal((JSON.parse(denied.stdout) as { denied: number }).denied, 1)
    await assert.rejects(readFile(join(strangerOut, 'posts', `0-${cid}.json`)), 'nothing of a denied post is written')
  })

  it('hashes keys as the key exchange does (SHA-256) in params.enckey', async () => {
    const key = new Uint8Array(32).fill(7)
    const { encodeKeyHashParam } = await import('@pharos/protocol/log/index.ts')
    assert.deepEqual(decodeKeyHashParam(encodeKeyHashParam(await keyHashOf(key))), await keyHashOf(key))
    assert.match(encodeKeyHashParam(await keyHashOf(key)), /^z/)
  })
})
