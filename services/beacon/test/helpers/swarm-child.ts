/**
 * A child process holding many real peers (the peer SDK) for fleet tests: the parent sends
 * commands over IPC and gets answers back. Peers are spread over processes so a test's
 * 200 libp2p nodes do not share one event loop with the test itself.
 *
 * Config (env SWARM_CONFIG, JSON): { network, networkSize, follow: author peer IDs,
 *   peers: [{ seed: hex of 32 bytes, bootstrap: multiaddrs, beaconConnections }] }.
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import type { CID } from 'multiformats/cid'
import { createPharosPeer } from '@pharos/peer'
import type { PharosPeer } from '@pharos/peer'
import type { SwarmCommand, SwarmConfig, SwarmReply } from './swarm-protocol.ts'

const config = JSON.parse(process.env.SWARM_CONFIG ?? '{}') as SwarmConfig
const peers: Array<PharosPeer | undefined> = []
/** Per peer: CIDs (text) of entries it holds, and how (its own, or gossip until the final sync). */
const delivered: Array<Map<string, 'own' | 'gossip' | 'sync'>> = []
let syncing = false

const reply = (message: SwarmReply): void => { process.send?.(message) }

async function startPeers (concurrency: number): Promise<void> {
  const failures: string[] = []
  let next = 0
  const startOne = async (index: number): Promise<void> => {
    const spec = config.peers[index]
    if (spec === undefined) return
    const privateKey = await generateKeyPairFromSeed('Ed25519', Buffer.from(spec.seed, 'hex'))
    const peer = await createPharosPeer({
      privateKey,
      bootstrap: spec.bootstrap,
      network: config.network,
      networkSize: config.networkSize,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      beaconConnections: spec.beaconConnections,
      timeouts: { joinMs: 90_000 }
    })
    const got = new Map<string, 'own' | 'gossip' | 'sync'>()
    delivered[index] = got
    peer.follow(config.follow)
    peer.onEntry((block) => {
      const key = block.cid.toString()
      if (!got.has(key)) got.set(key, syncing ? 'sync' : 'gossip')
    })
    try {
      await peer.start()
      peers[index] = peer
    } catch (err) {
      failures.push(`peer ${index}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < config.peers.length) await startOne(next++)
  }))
  reply({ type: 'started', failures })
}

async function publish (id: number, index: number, text: string): Promise<void> {
  const peer = peers[index]
  const started = Date.now()
  try {
    if (peer === undefined) throw new Error(`peer ${index} is not running`)
    const entry = await peer.publishPost({ text })
    // A peer never receives its own entries back: it holds them from the start.
    delivered[index]?.set(entry.cid.toString(), 'own')
    await peer.waitUntilHeld([entry.cid as CID], { state: 'stored', timeoutMs: 180_000 })
    reply({ type: 'published', id, cid: entry.cid.toString(), ms: Date.now() - started })
  } catch (err) {
    // What the peer was connected to when it gave up: for reading a failed run.
    const connections = peer?.libp2p.getConnections().map((connection) => `${connection.remotePeer.toString().slice(-6)} ${connection.direction} ${connection.status}`).join(', ') ?? 'none'
    reply({ type: 'publish-failed', id, error: `${err instanceof Error ? `${err.name}: ${err.message}` : String(err)} (connections: ${connections})` })
  }
}

function missing (cids: string[]): void {
  const perPeer = peers.map((peer, index) => {
    const got = delivered[index] ?? new Map()
    const lacking = cids.filter((cid) => !got.has(cid))
    let bySync = 0
    for (const how of got.values()) if (how === 'sync') bySync++
    return { index, running: peer !== undefined, missing: lacking.length, sample: lacking.slice(0, 3), bySync }
  })
  reply({ type: 'missing', perPeer })
}

async function syncAll (): Promise<void> {
  syncing = true
  const failures: string[] = []
  await Promise.all(peers.map(async (peer, index) => {
    if (peer === undefined) return
    try {
      await peer.sync()
    } catch (err) {
      failures.push(`peer ${index}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }))
  reply({ type: 'synced', failures })
}

process.on('message', (command: SwarmCommand) => {
  switch (command.type) {
    case 'start': void startPeers(command.concurrency); break
    case 'publish': void publish(command.id, command.peer, command.text); break
    case 'missing': missing(command.cids); break
    case 'sync': void syncAll(); break
    case 'stop':
      void Promise.allSettled(peers.map(async (peer) => await peer?.stop())).then(() => { process.exit(0) })
      break
  }
})
reply({ type: 'ready' })
