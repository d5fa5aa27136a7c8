/**
 * The peer SDK: what a network's app embeds to take part in a Pharos network (DESIGN.md §1,
 * §3, §4). One `PharosPeer` is one libp2p node with the overlay driver, Helia with Bitswap on
 * that node, the peer's own signed log, and clients of the beacon's sync and key-exchange
 * protocols. It reaches nothing but the beacons it is given and the peers the overlay
 * introduces: no DHT, no public bootstrap list, no HTTP gateways.
 *
 *   const peer = await createPharosPeer({ privateKey, bootstrap: ['/ip4/…/tcp/4001/p2p/12D3KooW…'] })
 *   await peer.start()                                  // dial, join the overlay, learn own head
 *   const { cid } = await peer.publishPost({ text: 'hello', attachments: [{ name: 'a.txt', bytes }] })
 *   await peer.waitUntilHeld([cid])                     // the beacon pinned it
 *   const log = await peer.fetchLog(author)             // verified, head first
 *   const post = await peer.fetchPost(log[0])           // body and files over Bitswap
 *
 * This class is a facade over the modules peer-parts.ts builds and starts (beacon-sessions,
 * the registry copy and bans, publisher, log-sync, head-requests, fetcher, content keys and
 * the keys it holds, storage-audit): each public method checks that the peer runs, then
 * delegates.
 */
import type { Helia } from '@helia/interface'
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import type { ChallengeResult } from '@pharos/protocol/audit/index.ts'
import type { Entry, EntryBlock } from '@pharos/protocol/log/index.ts'
import type { KeyDeposit, KeyDistribution, KeyDistributionReport } from './content-keys.ts'
import type { Post } from './fetcher.ts'
import type { SyncReport } from './log-sync.ts'
import type { PeerBan } from './peer-bans.ts'
import type { PharosPeerInit, PharosPeerNode } from './peer-node.ts'
import { buildPeerParts, startPeer, stopPeer } from './peer-parts.ts'
import type { PeerParts } from './peer-parts.ts'
import type { RegistryStatus } from './peer-registry.ts'
import type { FetchLogOptions, FetchPostOptions, PublishPostOptions } from './progress.ts'
import type { LogReceiptOptions, PinReceiptOptions, PostInput, PublishedEntry, WaitUntilHeldOptions } from './publisher.ts'
import type { LogReceipt, PinReceipt } from './receipts.ts'
import { challengeBeacon } from './storage-audit.ts'

// The API's types live beside the modules that take them; the SDK exports them from here.
export type { AttachmentInput, AttachmentLink } from './post.ts'
export type { KeyDeposit, KeyDistribution, KeyDistributionReport, PeerBan, Post, RegistryStatus, SyncReport }
export type { PharosPeerInit, PharosPeerNode, PharosPeerServices } from './peer-node.ts'
export type { LogReceiptOptions, PinReceiptOptions, PostInput, PublishedEntry, WaitUntilHeldOptions }

export class PharosPeer {
  /** The peer's ID; its log's author. */
  readonly peerId: PeerId
  /** The libp2p node (overlay as `services.overlay`). */
  readonly libp2p: PharosPeerNode
  /** Helia on the same node, Bitswap only. */
  readonly helia: Helia & { libp2p: Libp2p }

  private readonly parts: PeerParts

  /** Use `createPharosPeer`. */
  constructor (parts: PeerParts) {
    this.parts = parts
    this.peerId = parts.libp2p.peerId
    this.libp2p = parts.libp2p
    this.helia = parts.helia
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * Starts the node, serves the sync protocol, dials the bootstrap beacons, joins the overlay
   * topics through them and waits (at most `timeouts.joinMs`) until the content topic has an
   * active neighbour; then asks for its own head, so a new entry continues its log, and
   * syncs the authors it follows. Throws OverlayRefusedError if a beacon refuses it (e.g.
   * `not-registered`), NoBeaconError if none can be dialled in three passes over the list,
   * JoinTimeoutError.
   */
  async start (options: AbortOptions = {}): Promise<void> {
    await startPeer(this.parts, options)
  }

  /** Stops background work, Helia and the node. */
  async stop (): Promise<void> {
    await stopPeer(this.parts)
  }

  // ---- registry -----------------------------------------------------------------------------

  /**
   * The peer's copy of the registry of accounts (docs/registry.md): the gate of its overlay
   * views (`waiting` for a first copy: only its beacons are admitted; `registry`; `open` when
   * no beacon serves one), N (what sizes its views) and the accounts it holds.
   */
  registry (): RegistryStatus {
    return this.parts.accounts.status()
  }

  /**
   * Asks a beacon for the registry's changes now (the peer also does every
   * `registryRefreshMs` and when a beacon connects); resolves once the copy is current, or
   * stays as it was when no beacon gave a verified page.
   */
  async refreshRegistry (options: AbortOptions = {}): Promise<RegistryStatus> {
    this.parts.lifecycle.requireStarted('refreshRegistry')
    await this.parts.accounts.refresh(options)
    return this.parts.accounts.status()
  }

  /**
   * The peers this peer banned: each signed the envelope of an entry whose author signature
   * failed (never the neighbour that only forwarded it). Kept in `stateStore` across
   * restarts; a banned peer is refused connections and overlay links (`banned`).
   */
  bans (): PeerBan[] {
    return this.parts.banned.list()
  }

  // ---- own log ------------------------------------------------------------------------------

  /** This peer's current head, if it has published anything (or learned its head from a beacon). */
  head (author: string = this.peerId.toString()): { cid: CID, seq: number } | undefined {
    const head = this.parts.store.head(author)
    return head === undefined ? undefined : { cid: head.cid, seq: head.entry.seq }
  }

  /**
   * Publishes a post: each attachment becomes a UnixFS file (CIDv1, raw leaves) in the local
   * blockstore, the body a dag-cbor block linking them, and the next entry of the peer's log
   * (`append-feed-post`, `params.content` = the body) is signed, kept, and broadcast on the
   * content topic under its CID. Throws OwnHeadUnknownError if no beacon could say where the
   * log stands (publishing then could fork it).
   *
   * With `private: { allow, beacons }` (docs/private-posts.md) the body and every attachment
   * are encrypted with AES-256-GCM under a fresh key, the entry's `params.enckey` names the
   * key's hash, the key is deposited with a beacon only if `beacons` is true (a refused
   * deposit publishes nothing), and it is pushed to up to `pushTo` allowed readers online.
   * This peer holds the key and answers GETKEY for it; `published.private` says where it went.
   */
  async publishPost (post: PostInput, options: PublishPostOptions = {}): Promise<PublishedEntry> {
    this.parts.lifecycle.requireStarted('publishPost')
    return await this.parts.publisher.publishPost(post, options)
  }

  /**
   * Resolves once a beacon reports every CID in `state` (`pinned` by default). Polls the
   * beacon's `status` meanwhile, and every few seconds re-announces the peer's head with a
   * `heads` request carrying it as `known`, so a beacon that missed the gossip fetches it.
   * On timeout, RequestTimeoutError says what the last status was. With `receipts: true`,
   * resolves with a verified pin receipt per CID (see `receipt`).
   */
  async waitUntilHeld (cids: readonly CID[], options: WaitUntilHeldOptions & { receipts: true }): Promise<PinReceipt[]>
  async waitUntilHeld (cids: readonly CID[], options?: WaitUntilHeldOptions): Promise<void>
  async waitUntilHeld (cids: readonly CID[], options: WaitUntilHeldOptions = {}): Promise<PinReceipt[] | void> {
    this.parts.lifecycle.requireStarted('waitUntilHeld')
    return await this.parts.publisher.waitUntilHeld(cids, options)
  }

  /**
   * A signed receipt from a beacon (docs/logs.md "Receipts"), verified before it is returned:
   * for an author's log (a peer ID: up to `options.head`, else the beacon's best head) or for
   * a pinned DAG (a CID). The receipt must be signed by the beacon that answered (Noise
   * authenticated it), be of the kind asked for, and be about exactly that author, head or
   * root; otherwise ReceiptVerificationError, at once. A beacon that holds it only in part
   * says so and the next beacon is asked; NotHeldError if none gives one.
   */
  async receipt (author: string, options?: LogReceiptOptions): Promise<LogReceipt>
  async receipt (cid: CID, options?: PinReceiptOptions): Promise<PinReceipt>
  async receipt (subject: string | CID, options: LogReceiptOptions & PinReceiptOptions = {}): Promise<LogReceipt | PinReceipt> {
    this.parts.lifecycle.requireStarted('receipt')
    return await this.parts.publisher.receipt(subject, options)
  }

  // ---- following and fetching ---------------------------------------------------------------

  /** Follows authors: `sync` fetches their logs, and their entries are taken from gossip. */
  follow (authors: readonly string[]): void {
    const added = this.parts.followed.add(authors)
    if (this.parts.lifecycle.started && added.length > 0) this.parts.headRequests.ask(added)
  }

  unfollow (authors: readonly string[]): void {
    this.parts.followed.delete(authors)
  }

  /** Calls `listener` with each new entry of a followed author (from sync or gossip), oldest first. */
  onEntry (listener: (block: EntryBlock) => void): () => void {
    return this.parts.followed.onEntry(listener)
  }

  /**
   * Sync on connect (DESIGN.md §4): asks a beacon for the heads of the followed authors
   * (telling it ours), and for each that is ahead of what the peer holds, fetches the missing
   * entries with `entries` requests, walking back from the head until an entry it holds or
   * genesis; each is verified before it is kept. One author's failure does not stop the rest.
   */
  async sync (options: AbortOptions = {}): Promise<SyncReport> {
    this.parts.lifecycle.requireStarted('sync')
    return await this.parts.logSync.sync(options)
  }

  /**
   * An author's whole log, from the best head (the best of what beacons report and what the
   * peer holds) down to genesis, every entry decoded and verified: signed by `author`, each
   * `prev` the CID of the entry below, each seq one more than the one below, genesis at seq 0.
   * Missing entries are fetched (and kept). Throws LogVerificationError naming the entry and
   * the reason, MissingEntryError if the chain cannot be completed, UnknownAuthorError if
   * nobody has a head for the author.
   */
  async fetchLog (author: string, options: FetchLogOptions = {}): Promise<EntryBlock[]> {
    this.parts.lifecycle.requireStarted('fetchLog')
    return await this.parts.logSync.fetchLog(author, options)
  }

  /**
   * A post's body and attachments, over Bitswap from whoever holds them (beacons serve
   * pinned content). Helia checks every block against its CID; this checks the body's shape
   * and that each attachment has the size the body says. Bounded by `timeouts.fetchPostMs`.
   * A private post (`params.enckey`) is decrypted when this peer gets its key from a holder
   * that admits it: its own store, connected beacons, the author, connected peers, then the
   * keyexchange topic. Otherwise KeyDeniedError, whose `code` says why (`not-entitled`,
   * `unregistered`, `no-holder-online`, `key-hash-mismatch`).
   */
  async fetchPost (entry: Entry | EntryBlock, options: FetchPostOptions = {}): Promise<Post> {
    this.parts.lifecycle.requireStarted('fetchPost')
    return await this.parts.fetcher.fetchPost(entry, options)
  }

  // ---- key exchange and storage audits ------------------------------------------------------

  /**
   * Deposits a content key with a beacon, under an allow-list this peer signs (only `allow`
   * may get it). Resolves with the key hash once the beacon confirmed it.
   */
  async depositKey (deposit: KeyDeposit, options: AbortOptions = {}): Promise<{ keyHash: Uint8Array }> {
    this.parts.lifecycle.requireStarted('depositKey')
    return await this.parts.keys.deposit(deposit, options)
  }

  /** The key whose SHA-256 is `keyHash`, from a beacon; KeyDeniedError (with the beacon's reason) if this peer may not have it. */
  async getKey (keyHash: Uint8Array, options: AbortOptions = {}): Promise<Uint8Array> {
    this.parts.lifecycle.requireStarted('getKey')
    return await this.parts.keys.get(keyHash, options)
  }

  /**
   * Challenges a beacon worker to prove it holds `cids` (1..64 blocks this peer also holds,
   * e.g. its own posts): a fresh random nonce goes out, and each answer — SHA-256 of the nonce
   * and the block — is checked against this peer's own copy (docs/audits.md). Resolves with
   * the verdict (`passed`, `failed`, `unverifiable` when this peer holds none of them, or
   * `refused` when the worker is rate-limiting) and the outcome per CID. Throws
   * MalformedResponseError for an answer that is not one.
   */
  async challenge (worker: PeerId | string, cids: readonly CID[], options: AbortOptions = {}): Promise<ChallengeResult> {
    this.parts.lifecycle.requireStarted('challenge')
    return await challengeBeacon({ libp2p: this.libp2p, blockstore: this.helia.blockstore, network: this.parts.network, requestMs: this.parts.requestMs }, worker, cids, options)
  }
}

/**
 * Builds a peer (not started), with the bans its state store keeps. Throws
 * InvalidBootstrapAddressError for a bootstrap address without `/p2p/<peer id>`, and
 * BanStoreError for a state store whose bans document is not one.
 */
export async function createPharosPeer (init: PharosPeerInit): Promise<PharosPeer> {
  return new PharosPeer(await buildPeerParts(init))
}
