/**
 * A child process of the swarm generator running full SDK peers (createPharosPeer: libp2p,
 * the overlay, Helia with Bitswap): each joins the overlay through one worker, publishes
 * signed posts with an attachment when told and waits until the worker has pinned them,
 * and fetches other authors' posts (their log over the sync protocol, the post's body and
 * attachment over Bitswap). Config: env SWARM_FULL_CONFIG (JSON FullConfig).
 */
import { randomBytes } from 'node:crypto'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { createPharosPeer } from '@pharos/peer'
import type { PharosPeer } from '@pharos/peer'
import { reasonOf } from './protocol.ts'
import type { FullCommand, FullConfig, FullReply } from './protocol.ts'

const config = JSON.parse(process.env.SWARM_FULL_CONFIG ?? '{}') as FullConfig
const peers: Array<PharosPeer | undefined> = []
const reply = (message: FullReply): void => { process.send?.(message) }

async function startOne (index: number): Promise<void> {
  const spec = config.peers[index]
  if (spec === undefined) return
  const started = performance.now()
  try {
    const peer = await createPharosPeer({
      privateKey: await generateKeyPairFromSeed('Ed25519', Buffer.from(spec.seed, 'hex')),
      bootstrap: spec.bootstrap,
      network: config.network,
      networkSize: config.networkSize,
      beaconConnections: 1,
      timeouts: { joinMs: 60_000 }
    })
    await peer.start()
    peers[index] = peer
    reply({ type: 'joined', peer: index, ms: performance.now() - started })
  } catch (err) {
    reply({ type: 'join-failed', peer: index, reason: reasonOf(err), message: err instanceof Error ? err.message : String(err) })
  }
}

/** Starts every peer, `concurrency` at a time, at most one start per `intervalMs`. */
async function startAll (concurrency: number, intervalMs: number): Promise<void> {
  let next = 0
  let lastStart = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < config.peers.length) {
      const index = next++
      const wait = lastStart + intervalMs - performance.now()
      lastStart = Math.max(performance.now(), lastStart + intervalMs)
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      await startOne(index)
    }
  }))
  reply({ type: 'started' })
}

async function publish (id: number, index: number): Promise<void> {
  const started = performance.now()
  try {
    const peer = peers[index]
    if (peer === undefined) throw Object.assign(new Error(`peer ${index} is not running`), { name: 'PeerNotRunning' })
    const entry = await peer.publishPost({ text: `swarm ${id}`, attachments: [{ name: 'load.bin', bytes: randomBytes(config.attachmentBytes) }] })
    await peer.waitUntilHeld([entry.cid], { state: 'pinned', timeoutMs: 120_000 })
    reply({ type: 'published', id, peer: index, author: peer.libp2p.peerId.toString(), pinnedMs: performance.now() - started })
  } catch (err) {
    reply({ type: 'publish-failed', id, reason: reasonOf(err) })
  }
}

async function fetchLatest (id: number, index: number, author: string): Promise<void> {
  const started = performance.now()
  try {
    const peer = peers[index]
    if (peer === undefined) throw Object.assign(new Error(`peer ${index} is not running`), { name: 'PeerNotRunning' })
    const log = await peer.fetchLog(author, { signal: AbortSignal.timeout(60_000) })
    const latest = log[0]
    if (latest === undefined) throw Object.assign(new Error(`no entries of ${author}`), { name: 'EmptyLog' })
    const post = await peer.fetchPost(latest, { signal: AbortSignal.timeout(60_000) })
    const bytes = post.attachments.reduce((sum, attachment) => sum + attachment.bytes.byteLength, 0)
    reply({ type: 'fetched', id, bytes, ms: performance.now() - started })
  } catch (err) {
    reply({ type: 'fetch-failed', id, reason: reasonOf(err) })
  }
}

/** Peers still connected to their beacon (the worker named at the end of their bootstrap address). */
function held (): number {
  let count = 0
  peers.forEach((peer, index) => {
    const beacon = config.peers[index]?.bootstrap[0]?.split('/p2p/').at(-1)
    if (peer !== undefined && beacon !== undefined && peer.libp2p.getConnections(peerIdFromString(beacon)).length > 0) count++
  })
  return count
}

process.on('message', (command: FullCommand) => {
  switch (command.type) {
    case 'start': void startAll(command.concurrency, command.intervalMs); break
    case 'publish': void publish(command.id, command.peer); break
    case 'fetch': void fetchLatest(command.id, command.peer, command.author); break
    case 'status': reply({ type: 'status', held: held(), rssBytes: process.memoryUsage().rss }); break
    case 'stop':
      void Promise.allSettled(peers.map(async (peer) => await peer?.stop())).finally(() => { process.exit(0) })
      break
  }
})
process.on('disconnect', () => { process.exit(0) })
reply({ type: 'ready' })
