/**
 * The two systems under test, behind one shape: the same libp2p node (TCP on loopback, noise,
 * yamux, identify, the wire meter as its metrics component), with either the Pharos overlay
 * driver (HyParView + Plumtree) or @libp2p/gossipsub 17 as its dissemination service.
 */
import { createHash } from 'node:crypto'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { gossipsub, StrictNoSign } from '@libp2p/gossipsub'
import type { GossipSub } from '@libp2p/gossipsub'
import { RPC } from '@libp2p/gossipsub/message'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import type { Libp2p, PeerId, ServiceMap } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { createLibp2p } from 'libp2p'
import type { ServiceFactoryMap } from 'libp2p'
import { CID } from 'multiformats/cid'
import { create as createDigest } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { overlay } from '@pharos/net/overlay/overlay-driver.ts'
import type { OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import { DAG_CBOR_CODE } from '@pharos/protocol/log/cbor.ts'
import { decodeHyParView, decodePlumtree, deriveSeed, overlayProtocolId } from '@pharos/protocol/overlay/index.ts'
import type { Scenario, SystemName } from './scenario.ts'
import { bootstrapOf, keySeed } from './scenario.ts'
import type { Classifier, FrameClass, WireMeter } from './wire-meter.ts'

const NETWORK = 'pharos-bench'
const TOPIC = 'bench'
/** The wire name of the topic; gossipsub uses the same string so topic bytes cost both the same. */
const TOPIC_NAME = `/${NETWORK}/${TOPIC}`

/** Where node `index` listens; the coordinator gathers these from every worker. */
export interface BookEntry {
  index: number
  peerId: string
  addrs: string[]
}

/** The nodes of one system that live in this process (a slice of the network). */
export interface Swarm {
  readonly system: SystemName
  /** Node index → node, for this process's slice. */
  readonly nodes: ReadonlyMap<number, Libp2p>
  /** Every node's peer ID and addresses, once all workers listen. */
  setBook(book: readonly BookEntry[]): void
  /** Called once the dials are done: Plumtree nodes join the topic; gossipsub nodes are already subscribed. */
  join(): Promise<void>
  /** Dissemination neighbours of a node: Plumtree active view (eager + lazy), gossipsub mesh. */
  degree(index: number): number
  /** Plumtree eager peers of a node (its tree links); undefined for gossipsub. */
  eagerDegree(index: number): number | undefined
  /** Publishes from node `index`; false if the system refused (e.g. gossipsub found no peers). */
  publish(index: number, payload: Uint8Array): Promise<boolean>
  onDeliver(listener: (index: number, payload: Uint8Array) => void): void
  stop(): Promise<void>
}

/** Stream bytes of protocols that are neither system's (identify) are not counted. */
export function classifierOf (system: SystemName): Classifier {
  return system === 'plumtree' ? classifyPlumtree : classifyGossipsub
}

function classifyPlumtree (protocol: string, direction: 'inbound' | 'outbound', frame: Uint8Array): FrameClass | undefined {
  if (!protocol.startsWith(`/${NETWORK}/`)) return undefined
  if (protocol.endsWith('/peer-addrs/1.0.0')) return { payload: false, items: { 'addr-lookup': 1 } }
  // The acceptor of an overlay stream writes only its preamble on it (overlay-driver.ts).
  if (direction === 'inbound') return { payload: false, items: { preamble: 1 } }
  if (protocol === overlayProtocolId(NETWORK, 'plumtree')) {
    const decoded = decodePlumtree(frame)
    if (!decoded.ok) throw new Error(`undecodable plumtree frame: ${decoded.code}`)
    const message = decoded.value.message
    if (message.type === 'ihave') return { payload: false, items: { ihave: 1, 'ihave-ids': message.entries.length } }
    return { payload: message.type === 'gossip', items: { [message.type]: 1 } }
  }
  const decoded = decodeHyParView(frame)
  if (!decoded.ok) throw new Error(`undecodable hyparview frame: ${decoded.code}`)
  return { payload: false, items: { [decoded.value.message.type]: 1 } }
}

function classifyGossipsub (protocol: string, _direction: 'inbound' | 'outbound', frame: Uint8Array): FrameClass | undefined {
  if (!protocol.startsWith('/meshsub/') && !protocol.startsWith('/floodsub/')) return undefined
  const rpc = RPC.decode(frame)
  const items: Record<string, number> = {}
  const add = (item: string, count: number): void => { if (count > 0) items[item] = (items[item] ?? 0) + count }
  add('message', rpc.messages.length)
  add('subscription', rpc.subscriptions.length)
  const control = rpc.control
  if (control !== undefined) {
    add('ihave', control.ihave.length)
    add('ihave-ids', control.ihave.reduce((n, ihave) => n + ihave.messageIDs.length, 0))
    add('iwant', control.iwant.length)
    add('iwant-ids', control.iwant.reduce((n, iwant) => n + iwant.messageIDs.length, 0))
    add('graft', control.graft.length)
    add('prune', control.prune.length)
    add('idontwant', control.idontwant.length)
    add('idontwant-ids', control.idontwant.reduce((n, idontwant) => n + idontwant.messageIDs.length, 0))
  }
  return { payload: rpc.messages.length > 0, items }
}

async function createNode<T extends ServiceMap> (scenario: Scenario, index: number, meter: WireMeter, services: ServiceFactoryMap<T>): Promise<Libp2p<T>> {
  return await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', keySeed(scenario, index)),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // Every node dials from 127.0.0.1: lift the per-IP inbound rate limit (default 5/s) that
    // would otherwise turn the bootstrap dials away.
    connectionManager: { inboundConnectionThreshold: 10_000, maxIncomingPendingConnections: 1000 },
    // No pings in the window: they are neither system's traffic.
    connectionMonitor: { enabled: false },
    metrics: meter.component(),
    services
  })
}

type PlumtreeNode = Libp2p<{ identify: unknown, overlay: OverlayDriver }>

export async function startPlumtree (scenario: Scenario, range: readonly [number, number], meter: WireMeter): Promise<Swarm> {
  const nodes = new Map<number, PlumtreeNode>()
  let book: readonly BookEntry[] = []
  const bootstrap = (): PeerId[] => book.slice(0, scenario.bootstrapNodes).map((entry) => peerIdFromString(entry.peerId))
  for (let index = range[0]; index < range[1]; index++) {
    nodes.set(index, await createNode(scenario, index, meter, {
      identify: identify(),
      overlay: overlay({
        network: NETWORK,
        topics: [TOPIC],
        networkSize: scenario.nodes,
        bootstrap,
        seed: deriveSeed(scenario.seed, index),
        // Validate, then forward, as Pharos does, with a check that costs nothing: the bench
        // measures dissemination; gossipsub runs with no validator either.
        validators: { [TOPIC]: () => 'accept' },
        ...(scenario.plumtreeOverrides === undefined ? {} : { topicConfig: { plumtree: scenario.plumtreeOverrides } })
      })
    }))
  }
  await Promise.all([...nodes.values()].map(async (node) => { await node.start() }))
  const snapshot = (index: number): { active: readonly string[], eager: readonly string[] } =>
    nodes.get(index)?.services.overlay.snapshot()[TOPIC] ?? { active: [], eager: [] }
  return {
    system: 'plumtree',
    nodes,
    setBook (entries) { book = entries },
    async join () {
      for (const [index, node] of nodes) {
        if (index === 0) continue
        const contact = book[bootstrapOf(scenario, index)]
        if (contact !== undefined) node.services.overlay.join(TOPIC, peerIdFromString(contact.peerId))
        // Paced so the bootstrap nodes' FORWARDJOIN walks do not all start in the same tick.
        await sleep(10)
      }
    },
    degree: (index) => snapshot(index).active.length,
    eagerDegree: (index) => snapshot(index).eager.length,
    async publish (index, payload) {
      const node = nodes.get(index)
      if (node === undefined) return false
      // The return value is not a refusal: broadcast() reports false whenever the call produced
      // no immediate action, which also happens when the payload only went into a pending IHAVE
      // batch (a publisher whose links are all lazy).
      node.services.overlay.broadcast(TOPIC, contentId(payload), payload)
      return true
    },
    onDeliver (listener) {
      for (const [index, node] of nodes) {
        node.services.overlay.onDeliver((delivery) => { listener(index, delivery.payload) })
      }
    },
    stop: async () => { await stopAll([...nodes.values()]) }
  }
}

type GossipsubNode = Libp2p<{ identify: unknown, pubsub: GossipSub }>

export async function startGossipsub (scenario: Scenario, range: readonly [number, number], meter: WireMeter): Promise<Swarm> {
  const nodes = new Map<number, GossipsubNode>()
  for (let index = range[0]; index < range[1]; index++) {
    nodes.set(index, await createNode(scenario, index, meter, {
      identify: identify(),
      pubsub: gossipsub({
        // Pharos broadcasts are not signed by the overlay either (a content ID names them);
        // with StrictNoSign gossipsub's message ID is the SHA-256 of the data.
        globalSignaturePolicy: StrictNoSign,
        // On loopback every peer has the address 127.0.0.1; without this the IP-colocation
        // penalty (P6), which hits every peer of an IP once more than ten share it, graylists
        // all of a node's peers. Deployed peers have distinct IPs.
        scoreParams: { IPColocationFactorWhitelist: new Set(['127.0.0.1']) }
      })
    }))
  }
  await Promise.all([...nodes.values()].map(async (node) => { await node.start() }))
  for (const node of nodes.values()) node.services.pubsub.subscribe(TOPIC_NAME)
  // The mesh is not on the GossipSub interface; the implementation class has getMeshPeers.
  const mesh = (index: number): number => {
    const pubsub = nodes.get(index)?.services.pubsub as (GossipSub & { getMeshPeers?: (topic: string) => string[] }) | undefined
    return pubsub?.getMeshPeers?.(TOPIC_NAME).length ?? 0
  }
  return {
    system: 'gossipsub',
    nodes,
    setBook () {},
    async join () {},
    degree: mesh,
    eagerDegree: () => undefined,
    async publish (index, payload) {
      const node = nodes.get(index)
      if (node === undefined) return false
      try {
        await node.services.pubsub.publish(TOPIC_NAME, payload)
        return true
      } catch {
        return false
      }
    },
    onDeliver (listener) {
      for (const [index, node] of nodes) {
        node.services.pubsub.addEventListener('message', (event) => {
          if (event.detail.topic === TOPIC_NAME) listener(index, event.detail.data)
        })
      }
    },
    stop: async () => { await stopAll([...nodes.values()]) }
  }
}

/**
 * A Pharos message ID: the CIDv1 (dag-cbor, sha2-256) string of the payload, what receivers
 * require off the `content` topic (services/protocol/src/log/message-id.ts); any other ID gets
 * the sender dropped.
 */
function contentId (payload: Uint8Array): string {
  return CID.create(1, DAG_CBOR_CODE, createDigest(sha256.code, sha256Bytes(payload))).toString()
}

function sha256Bytes (bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

/** Stops every node, each bounded in time so a stuck close cannot hang the benchmark. */
async function stopAll (nodes: readonly Libp2p[]): Promise<void> {
  await Promise.all(nodes.map(async (node) => {
    await within(5000, (async () => { await node.stop() })().catch(() => {}))
  }))
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Waits for `work`, but no longer than `ms`; the timer does not outlive the wait (it would keep the process alive). */
export async function within (ms: number, work: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([work, new Promise((resolve) => { timer = setTimeout(resolve, ms) })])
  clearTimeout(timer)
}
