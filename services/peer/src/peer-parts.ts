/**
 * The modules one PharosPeer is made of, built once and wired to each other (each given only
 * what it uses), and the order they start and stop in. pharos-peer.ts is the facade over
 * them: its methods check that the peer runs, then delegate to one of these.
 */
import { unixfs } from '@helia/unixfs'
import type { Helia } from '@helia/interface'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import type { AbortOptions, Libp2p, Logger } from '@libp2p/interface'
import { KeyExchangeClient } from '@pharos/net/clients/key-exchange-client.ts'
import { SyncClient } from '@pharos/net/clients/sync-client.ts'
import { AcceptedPayloads } from '@pharos/net/overlay/gossip-validators.ts'
import { allowListEntitlement, syncProtocolId } from '@pharos/protocol/log/index.ts'
import type { EntryBlock } from '@pharos/protocol/log/index.ts'
import { beaconOf, BeaconSessions } from './beacon-sessions.ts'
import { ACCEPTED_ENTRIES_MAX, DEFAULT_MAX_ATTACHMENT_BYTES, DEFAULT_NETWORK, DEFAULT_NETWORK_SIZE, DEFAULT_REGISTRY_REFRESH_MS, DEFAULT_TIMEOUTS, MAX_PUSHED_KEYS } from './constants.ts'
import { ContentKeys } from './content-keys.ts'
import { fileStateStore } from './file-state-store.ts'
import { Fetcher } from './fetcher.ts'
import { FollowedAuthors } from './followed-authors.ts'
import { HeadRequests } from './head-requests.ts'
import { HeldKeys } from './held-keys.ts'
import { KeyHolder } from './key-holder.ts'
import { signerFor } from './keys.ts'
import { PeerLifecycle } from './lifecycle.ts'
import { LocalLog } from './local-log.ts'
import { LogSync } from './log-sync.ts'
import { createPeerNode } from './peer-node.ts'
import type { PharosPeerInit, PharosPeerNode } from './peer-node.ts'
import { PeerBans } from './peer-bans.ts'
import { PeerRegistry } from './peer-registry.ts'
import { Publisher } from './publisher.ts'
import { MemoryStateStore } from './state-store.ts'
import { serveSync } from './sync-responder.ts'

export interface PeerParts {
  readonly libp2p: PharosPeerNode
  readonly helia: Helia & { libp2p: Libp2p }
  readonly network: string
  readonly log: Logger
  readonly lifecycle: PeerLifecycle
  readonly requestMs: number
  /** The peer's own log and the entries it fetched. */
  readonly store: LocalLog
  readonly sessions: BeaconSessions
  readonly publisher: Publisher
  readonly followed: FollowedAuthors
  readonly headRequests: HeadRequests
  readonly logSync: LogSync
  readonly fetcher: Fetcher
  readonly keys: ContentKeys
  readonly heldKeys: HeldKeys
  readonly keyHolder: KeyHolder
  /** The peer's copy of the registry of accounts: the gate of its overlay views. */
  readonly accounts: PeerRegistry
  readonly banned: PeerBans
  readonly registryRefreshMs: number
  /** Undone at stop. */
  readonly cleanups: Array<() => void>
}

/**
 * Builds a peer's node and parts, not started, with the bans its state store keeps. Throws
 * InvalidBootstrapAddressError for a bootstrap address without `/p2p/<peer id>`, and
 * BanStoreError for a state store whose bans document is not one.
 */
export async function buildPeerParts (init: PharosPeerInit): Promise<PeerParts> {
  const beacons = init.bootstrap.map(beaconOf)
  const accepted = new AcceptedPayloads<EntryBlock>(ACCEPTED_ENTRIES_MAX)
  const network = init.network ?? DEFAULT_NETWORK
  const logger = init.logger ?? defaultLogger()
  const accounts = new PeerRegistry({
    network,
    beacons,
    networkSize: init.networkSize ?? DEFAULT_NETWORK_SIZE,
    ...(init.registryKey === undefined ? {} : { registryKey: init.registryKey }),
    log: logger.forComponent('pharos:peer:registry')
  })
  // One store for the peer's own state: the peers it banned and the content keys it holds.
  const state = init.stateStore ?? (init.dataDir === undefined ? new MemoryStateStore() : fileStateStore(init.dataDir))
  const banned = new PeerBans(state)
  await banned.load()
  const { libp2p, helia } = await createPeerNode(init, network, logger, beacons, accepted, accounts, banned)

  const self = libp2p.peerId.toString()
  const signer = signerFor(init.privateKey)
  const timeouts = { ...DEFAULT_TIMEOUTS, ...init.timeouts }
  const log = logger.forComponent('pharos:peer')
  const lifecycle = new PeerLifecycle()
  const run = lifecycle
  const store = new LocalLog(helia.blockstore)
  const fs = unixfs(helia)
  const syncClient = new SyncClient(libp2p, network, timeouts.requestMs)
  const overlay = libp2p.services.overlay
  const beaconConnections = Math.max(1, Math.min(init.beaconConnections ?? beacons.length, beacons.length))
  const sessions = new BeaconSessions({ libp2p, overlay, beacons, beaconConnections, timeouts, run, log })
  const keyClient = new KeyExchangeClient(libp2p, network, timeouts.requestMs)
  const heldKeys = new HeldKeys({ self, maxPushed: MAX_PUSHED_KEYS, log, store: state })
  const keyHolder = new KeyHolder({ self, libp2p, network, held: heldKeys, entitlement: init.entitlement ?? allowListEntitlement, isRegistered: init.isRegistered ?? ((peer) => accounts.isRegistered(peer) ?? true), requestMs: timeouts.requestMs, log })
  const keys = new ContentKeys({ self, signer, keyClient, sessions, held: heldKeys, holder: keyHolder, libp2p, overlay, log })
  const publisher = new Publisher({ self, signer, network, store, fs, blockstore: helia.blockstore, overlay, sessions, keys, syncClient, run, log })
  const followed = new FollowedAuthors(log)
  const headRequests = new HeadRequests({ self, signer, libp2p, overlay, syncClient, store, followed, run, log })
  const logSync = new LogSync({ store, followed, sessions, syncClient, headRequests, accepted, timeouts, run, log })
  const fetcher = new Fetcher({ blockstore: helia.blockstore, fs, timeouts, maxAttachmentBytes: init.maxAttachmentBytes ?? DEFAULT_MAX_ATTACHMENT_BYTES, keys, run })
  // A new ban ends what the forger holds with us at once (the gater refuses it from then on).
  banned.onBan((ban) => {
    void libp2p.hangUp(peerIdFromString(ban.peer)).catch((err: unknown) => { log('hanging up on banned %s failed - %e', ban.peer, err) })
  })
  accounts.wire(libp2p, sessions, overlay, run, timeouts.requestMs)
  return {
    libp2p,
    helia,
    network,
    log,
    lifecycle,
    requestMs: timeouts.requestMs,
    store,
    sessions,
    publisher,
    followed,
    headRequests,
    logSync,
    fetcher,
    keys,
    heldKeys,
    keyHolder,
    accounts,
    banned,
    registryRefreshMs: init.registryRefreshMs ?? DEFAULT_REGISTRY_REFRESH_MS,
    cleanups: []
  }
}

/**
 * Starts the node, serves the sync protocol and the keys this peer holds, dials the bootstrap
 * beacons, reads the registry before joining the overlay through them, then learns its own
 * head and syncs the authors it follows; after a failure, undoes what it started.
 */
export async function startPeer (parts: PeerParts, options: AbortOptions = {}): Promise<void> {
  const { lifecycle, libp2p, sessions, accounts, publisher, logSync, cleanups } = parts
  if (lifecycle.status !== 'stopped') return
  lifecycle.status = 'starting'
  lifecycle.renew()
  try {
    await libp2p.start()
    await parts.helia.start()
    await serveSync(libp2p, parts.network, parts.store, (from, known) => { logSync.onKnownHeads(from, known) }, { timeoutMs: parts.requestMs, logger: parts.log })
    await parts.heldKeys.load()
    await parts.keyHolder.start()
    cleanups.push(libp2p.services.overlay.onDeliver((delivery) => {
      if (delivery.topic === 'keyexchange') void parts.keyHolder.onTopicRequest(delivery.payload)
      else logSync.onDelivery(delivery)
    }))
    lifecycle.status = 'started'
    if (!sessions.hasBeacons()) {
      await accounts.refresh(options)
      publisher.settleOwnHeadLocally()
      return
    }
    const connected = await sessions.dialAtStart(options)
    // The registry before the join: the views it gates fill as the join answers.
    await accounts.refresh(options)
    const registryTimer = setInterval(() => { void accounts.refresh({ signal: lifecycle.signal }).catch(() => {}) }, parts.registryRefreshMs)
    registryTimer.unref()
    cleanups.push(() => { clearInterval(registryTimer) })
    await sessions.joinOverlay(connected, options)
    await publisher.refreshOwnHead(options).catch((err: unknown) => { parts.log('own head not learned at start (publish asks again) - %e', err) })
    await logSync.sync(options)
    cleanups.push(sessions.watch(() => {
      void accounts.refresh({ signal: lifecycle.signal }).catch(() => {})
      void logSync.sync({ signal: lifecycle.signal }).catch((err: unknown) => { parts.log('sync on reconnect failed - %e', err) })
    }))
  } catch (err) {
    lifecycle.status = 'started'
    await stopPeer(parts)
    throw err
  }
}

/** Stops background work, the protocols this peer serves, Helia and the node. */
export async function stopPeer (parts: PeerParts): Promise<void> {
  const { lifecycle, libp2p } = parts
  if (lifecycle.status !== 'started') return
  lifecycle.status = 'stopping'
  lifecycle.end()
  parts.headRequests.stop()
  parts.logSync.stop()
  for (const cleanup of parts.cleanups.splice(0)) cleanup()
  await libp2p.unhandle(syncProtocolId(parts.network)).catch(() => {})
  await parts.keyHolder.stop()
  await parts.helia.stop().catch((err: unknown) => { parts.log('helia stop failed - %e', err) })
  await libp2p.stop()
  lifecycle.status = 'stopped'
}
