/**
 * The libp2p node and Helia of a peer, and what a peer is built from (`PharosPeerInit`):
 * TCP, WebSockets and relayed transports, the overlay driver with the gossip validators,
 * Bitswap on the same node, and nothing that reaches anyone the peer was not given (no DHT,
 * no public bootstrap list).
 */
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { withBitswap } from '@helia/bitswap'
import * as dagCbor from '@ipld/dag-cbor'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import type { Identify } from '@libp2p/identify'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import type { Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import type { Helia } from '@helia/interface'
import { createLibp2p } from 'libp2p'
import { overlay } from '@pharos/net/overlay/overlay-driver.ts'
import type { NeighbourBudget, NeighbourScoring, OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import { auditValidator, contentValidator, keyExchangeValidator, syncValidator } from '@pharos/net/overlay/gossip-validators.ts'
import type { AcceptedPayloads, Forgery } from '@pharos/net/overlay/gossip-validators.ts'
import { OVERLAY_TOPICS } from '@pharos/net/overlay/topics.ts'
import type { EntitlementCheck, EntryBlock } from '@pharos/protocol/log/index.ts'
import type { BeaconContact } from './beacon-sessions.ts'
import type { PeerBans } from './peer-bans.ts'
import type { PeerRegistry } from './peer-registry.ts'
import type { PeerStateStore } from './state-store.ts'
import { DEFAULT_NETWORK_SIZE } from './constants.ts'
import type { PeerTimeouts } from './constants.ts'
import type { ComponentLogger, Ed25519PrivateKey, Libp2p } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'

/** The services of a peer's libp2p node. */
export type PharosPeerServices = { identify: Identify, ping: Ping, overlay: OverlayDriver }
export type PharosPeerNode = Libp2p<PharosPeerServices>

export interface PharosPeerInit {
  /** The peer's ed25519 key: its identity, and the key its log entries are signed with. */
  privateKey: Ed25519PrivateKey
  /** Beacon multiaddrs, each ending in `/p2p/<peer id>`; empty runs a peer with no beacon. */
  bootstrap: string[]
  /** Network id, as the beacons' PHAROS_NETWORK. @default 'pharos' */
  network?: string
  /** Addresses to listen on (e.g. `/ip4/0.0.0.0/tcp/0`, `/p2p-circuit`). @default [] (dial out only: beacons answer over the connection the peer opened) */
  listen?: string[]
  /**
   * Where entries, post bodies and attachments are kept, and Bitswap serves from. The peer
   * indexes it lazily (by CID) and does not persist its own head: on start it learns that
   * from a beacon, and it refuses to publish until one has answered.
   * @default a MemoryBlockstore
   */
  blockstore?: Blockstore
  /** libp2p-style component logger (bridge pino or another logger here). @default @libp2p/logger's debug logger */
  logger?: ComponentLogger
  /**
   * N, the overlay size estimate, until the peer has its first copy of the registry (its
   * count then sizes the views, and they resize as it changes), or for good when no beacon
   * serves one. @default 1000 (guess, constants.ts)
   */
  networkSize?: number
  /**
   * The fleet's registry key, as a peer ID (a beacon logs it at start as `registryKey`; an
   * operator publishes it): registry pages must be signed by it. Unset: the key that signed
   * the first page the peer takes is trusted for the rest of its run (docs/registry.md).
   */
  registryKey?: string
  /** How often the peer asks a beacon for the registry's changes (also at start and on each beacon connect). @default 60000 (guess, constants.ts) */
  registryRefreshMs?: number
  /** The SDK's own bounds on dials, joins and requests. @default DEFAULT_TIMEOUTS (constants.ts) */
  timeouts?: Partial<PeerTimeouts>
  /** Largest attachment `fetchPost` will fetch. @default 256 MiB (guess) */
  maxAttachmentBytes?: number
  /**
   * How many bootstrap beacons to stay connected to. They are tried in list order (put the
   * nearest first, or shuffle the list to spread peers over a fleet); when a connected one
   * goes away (a worker restarted or was killed) the next ones are dialled, with backoff,
   * and the overlay is rejoined through them if the peer was left without neighbours.
   * @default every beacon in `bootstrap`
   */
  beaconConnections?: number
  /**
   * Frames per second (and at once) each overlay neighbour may send this peer, for data
   * (payloads) and control frames; frames past them are dropped and cost the neighbour score.
   * @default DEFAULT_NEIGHBOUR_BUDGET (the beacon's defaults: 200/s and 400 data, 200/s and 2,000 control)
   */
  neighbourBudget?: Partial<NeighbourBudget>
  /**
   * What offences cost a neighbour, the threshold below which it is dropped, the score's
   * half-life and the back-off. @default DEFAULT_NEIGHBOUR_SCORING (docs/overlay-driver.md)
   */
  neighbourScoring?: Partial<NeighbourScoring>
  /**
   * Whether a peer ID is a registered account of the network, if the app knows better than the
   * peer's copy of the registry. The overlay forwards no entry by an unregistered author, and
   * no key request for an unregistered requester. Signatures and sizes are checked either way.
   * @default the peer's copy of the registry (no opinion until it has one)
   */
  isRegistered?: (peerId: string) => boolean
  /**
   * Where the peer keeps its own state across restarts: the peers it banned for forged
   * entries (`bans`) and the content keys it holds (`content-keys`: its own private posts'
   * keys and those authors pushed to it). `fileStateStore(dir)` keeps them in a folder (Node);
   * a browser app gives one over IndexedDB or localStorage (two methods, state-store.ts).
   * @default fileStateStore(dataDir) with `dataDir`, else a MemoryStateStore (one run)
   */
  stateStore?: PeerStateStore
  /**
   * A folder for the peer's state (Node): the same as `stateStore: fileStateStore(dataDir)`,
   * each document a JSON file of mode 0600. Ignored when `stateStore` is given.
   */
  dataDir?: string
  /**
   * Who may get a content key this peer holds (its own, or one pushed to it). The same check
   * a beacon runs. @default allowListEntitlement (the author and its signed allow-list)
   */
  entitlement?: EntitlementCheck
}

/**
 * The node and Helia of a peer (neither started). `beacons` is read by the overlay's
 * bootstrap and trust rules each time they ask, so beacons adopted later count too;
 * `accepted` carries what the content validator checked to the delivery.
 */
export async function createPeerNode (init: PharosPeerInit, network: string, logger: ComponentLogger, beacons: readonly BeaconContact[], accepted: AcceptedPayloads<EntryBlock>, registry: PeerRegistry, bans: PeerBans): Promise<{ libp2p: PharosPeerNode, helia: Helia & { libp2p: Libp2p } }> {
  const self = peerIdFromPrivateKey(init.privateKey)
  const isRegistered = init.isRegistered ?? ((peerId: string) => registry.isRegistered(peerId) ?? true)
  const log = logger.forComponent('pharos:peer:bans')
  const banForgery = (forgery: Forgery): void => {
    // The envelope's signer vouched for the entry; `from` may only have passed it on.
    if (forgery.publisher === self.toString()) return
    bans.ban({ peer: forgery.publisher, reason: 'bad-signature', detail: `signed the envelope of entry ${forgery.cid} (author ${forgery.author}), whose signature is invalid: ${forgery.code}; forwarded by ${forgery.from}`, at: Date.now() })
      .catch((err: unknown) => { log.error('ban of %s not kept - %e', forgery.publisher, err) })
  }
  const libp2p = await createLibp2p({
    privateKey: init.privateKey,
    start: false,
    logger,
    addresses: { listen: init.listen ?? [] },
    transports: [tcp(), webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The connection monitor opens a ping stream on every connection every 10 s; yamux's own
    // keep-alive (a ping frame every 30 s, no stream) already finds dead links. 50 idle
    // peers spent a quarter to a half of their CPU on those streams (docs/fleet.md "Idle
    // cost of a peer").
    connectionMonitor: { enabled: false },
    // Banned peers (forgers, peer-bans.ts): no dial to them, no connection from them.
    connectionGater: {
      denyDialPeer: (peer) => bans.isBanned(peer.toString()),
      denyInboundEncryptedConnection: (peer) => bans.isBanned(peer.toString()),
      denyOutboundEncryptedConnection: (peer) => bans.isBanned(peer.toString())
    },
    services: {
      identify: identify(),
      ping: ping(),
      overlay: overlay({
        network,
        topics: OVERLAY_TOPICS,
        networkSize: init.networkSize ?? DEFAULT_NETWORK_SIZE,
        bootstrap: () => beacons.map(({ peer }) => peer).filter((peer) => !peer.equals(self)),
        // Only a beacon we use may send us to its siblings; any other node (a worker the
        // overlay linked us to, another app) can only say that it is leaving itself, which it
        // could as well say by hanging up. The draining worker waits for us to hang up.
        drainTrust: (peer) => beacons.some((beacon) => beacon.peer.equals(peer)) ? 'siblings' : 'departure',
        // Only registered accounts (and the peer's beacons) enter its views, as at a beacon,
        // refused with the beacon's reason (`not-registered`): peer-registry.ts. Its beacons spend no
        // budget: a beacon is the contact of every join and passes on a FORWARDJOIN per join
        // per topic to each of its neighbours, and a drain of its sibling moves hundreds at once.
        admit: (peer) => bans.isBanned(peer.toString()) ? { admitted: false, reason: 'banned' } : registry.admit(peer),
        unbudgeted: (peer) => beacons.some((beacon) => beacon.peer.equals(peer)),
        ...(init.neighbourBudget === undefined ? {} : { neighbourBudget: init.neighbourBudget }),
        ...(init.neighbourScoring === undefined ? {} : { neighbourScoring: init.neighbourScoring }),
        // Validate, then forward: nothing this peer relays is unchecked (gossip-validators.ts).
        validators: {
          content: contentValidator(isRegistered, accepted, { onForgery: banForgery, isBanned: (peer) => bans.isBanned(peer) }),
          keyexchange: keyExchangeValidator(isRegistered),
          audit: auditValidator,
          sync: syncValidator(isRegistered)
        }
      })
    }
  })
  const helia = createHeliaLight({
    blockstore: init.blockstore ?? new MemoryBlockstore(),
    datastore: new MemoryDatastore(),
    codecs: [dagCbor],
    logger
  })
  // Helia light has no libp2p of its own; Bitswap runs on the peer's node (as beacon-helia.ts does).
  Object.defineProperty(helia, 'libp2p', { value: libp2p, enumerable: true })
  const withNode = helia as Helia & { libp2p: Libp2p }
  withBitswap(withNode)
  return { libp2p, helia: withNode }
}
