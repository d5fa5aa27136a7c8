/**
 * The peer's own log: learning where it stands from a beacon, publishing posts onto it, and
 * waiting until beacons hold what was published (statuses and signed receipts).
 */
import { setTimeout as delay } from 'node:timers/promises'
import type { UnixFS } from '@helia/unixfs'
import type { CID } from 'multiformats/cid'
import type { SyncClient } from '@pharos/net/clients/sync-client.ts'
import type { OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import { compareHeads, encodeKeyHashParam, FEED_POST_ACTION, sealEnvelope, signEntry, syncProtocolId } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer, EntryBlock, EntryStatus } from '@pharos/protocol/log/index.ts'
import type { BeaconSessions } from './beacon-sessions.ts'
import { newContentKey, seal } from './content-cipher.ts'
import type { ContentKeys, KeyDistribution, KeyDistributionReport } from './content-keys.ts'
import { REANNOUNCE_INTERVAL_MS, STATUS_POLL_INTERVAL_MS } from './constants.ts'
import { NotHeldError, OwnHeadUnknownError, PostFormatError, RemoteError, RequestTimeoutError } from './errors.ts'
import { isDefinitive } from './failures.ts'
import type { PeerRun } from './lifecycle.ts'
import type { LocalLog } from './local-log.ts'
import { checkLogEntry } from './log-verify.ts'
import { attachmentNameProblem, encodePostBody, encodePrivatePostBlock } from './post.ts'
import type { AttachmentInput, AttachmentLink } from './post.ts'
import { report } from './progress.ts'
import type { PublishPostOptions, PublishPostProgress, WaitUntilHeldProgressEvents } from './progress.ts'
import { verifyLogReceipt, verifyPinReceipt } from './receipts.ts'
import type { LogReceipt, PinReceipt, PinReceiptScope } from './receipts.ts'
import type { AbortOptions, Logger } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { ProgressOptions } from 'progress-events'

/** What `publishPost` publishes. */
export interface PostInput {
  text: string
  attachments?: AttachmentInput[]
  /**
   * Publish privately (docs/private-posts.md): the body and every attachment are encrypted
   * with AES-256-GCM under a fresh random key whose hash goes in `params.enckey`; the key is
   * deposited with a beacon only if `beacons` is true, and pushed to up to `pushTo` of the
   * `allow`ed readers that are online. The author always holds it and answers GETKEY for it.
   */
  private?: KeyDistribution
}

/** A published entry of the peer's own log. */
export interface PublishedEntry {
  /** The entry's CID (dag-cbor); also the message ID it was broadcast under. */
  cid: CID
  seq: number
  /** The post body's CID (`params.content`): for a private post, the block holding the sealed body. */
  content: CID
  block: EntryBlock
  /** For a private post: its key hash (`params.enckey`), whether a beacon took the key, who it was pushed to. */
  private?: KeyDistributionReport
}

export interface WaitUntilHeldOptions extends AbortOptions, ProgressOptions<WaitUntilHeldProgressEvents> {
  /** `pinned`: held with everything it links to; `stored`: the block itself is held. @default 'pinned' */
  state?: 'stored' | 'pinned'
  /** Give up after this long. @default 300000 (guess: a beacon pin job with retries) */
  timeoutMs?: number
  /**
   * Also get a verified pin receipt for each CID once all are pinned (`receipt(cid)`), and
   * resolve with them in the order of `cids`. Needs `state: 'pinned'`. @default false
   */
  receipts?: boolean
}

export interface LogReceiptOptions extends AbortOptions {
  /** The head the receipt must cover. @default the beacon's best head for the author */
  head?: CID
}

export interface PinReceiptOptions extends AbortOptions {
  /**
   * The scope the receipt must have: `dag` (the whole DAG under the CID) or `entry` (a log
   * entry's pin: the entry and its content, not `prev`). @default either, as the beacon holds it
   */
  scope?: PinReceiptScope
}

const DEFAULT_HOLD_TIMEOUT_MS = 300_000

export interface PublisherComponents {
  /** This peer's ID as a string: the author of its log. */
  self: string
  signer: Ed25519Signer
  network: string
  store: LocalLog
  /** Attachments are added as UnixFS files, the body put as a block, in the peer's blockstore. */
  fs: Pick<UnixFS, 'addBytes'>
  blockstore: Pick<Blockstore, 'put'>
  overlay: Pick<OverlayDriver, 'broadcast'>
  sessions: Pick<BeaconSessions, 'withBeacon'>
  keys: Pick<ContentKeys, 'distribute'>
  syncClient: Pick<SyncClient, 'heads' | 'entries' | 'status' | 'receipt'>
  run: Pick<PeerRun, 'requireStarted'>
  log: Logger
}

export class Publisher {
  private readonly components: PublisherComponents
  /** True once a beacon answered for our own head (or there is no beacon to ask). */
  private ownHeadSettled = false
  /** Publishes run one at a time: each continues the head the previous one made. */
  private publishing: Promise<unknown> = Promise.resolve()

  constructor (components: PublisherComponents) {
    this.components = components
  }

  /** With no beacon to ask, the peer's own head is what it holds. */
  settleOwnHeadLocally (): void {
    this.ownHeadSettled = true
  }

  /**
   * Asks a beacon for this peer's own head. If the beacon holds a better one than the peer
   * (a previous run published it), the head entry is fetched, verified and adopted, so the
   * next entry continues it. The request carries our own head as `known`, so a beacon that
   * lacks it fetches it from us.
   */
  async refreshOwnHead (options: AbortOptions): Promise<void> {
    const { self, network, store, sessions, syncClient } = this.components
    try {
      await sessions.withBeacon('own head', options, async (beacon) => {
        const [head] = await syncClient.heads(beacon, [self], store.knownHeads([self]), options)
        const local = store.head(self)
        if (head !== undefined && (local === undefined || compareHeads(head, { seq: local.entry.seq, cid: local.cid }) < 0)) {
          const [bytes] = await syncClient.entries(beacon, head.cid, 1, options)
          if (bytes === undefined) throw new RemoteError(beacon.toString(), syncProtocolId(network), 'unavailable', `announced head ${head.cid.toString()} but returned no entry`)
          await store.add(await checkLogEntry(self, { cid: head.cid, seq: head.seq }, bytes), options)
        }
      })
    } catch (err) {
      throw new OwnHeadUnknownError({ cause: err })
    }
    this.ownHeadSettled = true
  }

  /**
   * Each attachment becomes a UnixFS file (CIDv1, raw leaves) in the local blockstore, the
   * body a dag-cbor block linking them, and the next entry of the log is signed, kept, and
   * broadcast on the content topic under its CID. A private post's files and body are sealed
   * first, and its key distributed before the entry is signed (so a refused deposit publishes
   * nothing, and readers can get the key as soon as they see the entry).
   */
  async publishPost (post: PostInput, options: PublishPostOptions): Promise<PublishedEntry> {
    const { self, signer, store, fs, blockstore, overlay, keys, log } = this.components
    const attachments = post.attachments ?? []
    for (const attachment of attachments) {
      const problem = attachmentNameProblem(attachment.name)
      if (problem !== undefined) throw new PostFormatError('(new)', problem)
    }
    const run = this.publishing.then(async () => {
      if (!this.ownHeadSettled) await this.refreshOwnHead(options)
      const progress: PublishPostProgress = { blocks: 0, bytes: 0, attachments: 0, totalAttachments: attachments.length }
      const key = post.private === undefined ? undefined : newContentKey()
      const links: AttachmentLink[] = []
      for (const attachment of attachments) {
        const { name } = attachment
        // A private attachment is stored (and pinned, and served) only as its sealed bytes.
        const bytes = key === undefined ? attachment.bytes : await seal(key, attachment.bytes, 'file')
        const before = progress.bytes
        const cid = await fs.addBytes(bytes, {
          signal: options.signal,
          // Each leaf the importer writes (its bytesWritten counts this file's bytes so far).
          onProgress: (event) => {
            if (event.type !== 'unixfs:importer:progress:file:write') return
            progress.blocks++
            progress.bytes = before + Number(event.detail.bytesWritten)
            report(options, 'pharos:publish-post:block', { ...progress, cid: event.detail.cid })
          }
        })
        links.push({ name, size: bytes.length, cid })
        progress.attachments++
        progress.bytes = before + bytes.length
        report(options, 'pharos:publish-post:attachment', { ...progress, name })
      }
      const plainBody = await encodePostBody({ text: post.text, attachments: links })
      const body = key === undefined ? plainBody : await encodePrivatePostBlock({ sealed: await seal(key, plainBody.bytes, 'body'), files: links.map((link) => link.cid) })
      await blockstore.put(body.cid, body.bytes, { signal: options.signal })
      progress.blocks++
      report(options, 'pharos:publish-post:block', { ...progress, cid: body.cid })
      const distribution = key === undefined || post.private === undefined ? undefined : await keys.distribute(key, post.private, options)
      const head = store.head(self)
      const block = await signEntry({
        seq: head === undefined ? 0 : head.entry.seq + 1,
        prev: head?.cid ?? null,
        action: FEED_POST_ACTION,
        timestamp: Date.now(),
        params: distribution === undefined ? { content: body.cid } : { content: body.cid, enckey: encodeKeyHashParam(distribution.keyHash) }
      }, signer)
      await store.add(block, { signal: options.signal })
      overlay.broadcast('content', block.cid.toString(), await sealEnvelope(block.bytes, signer))
      log('published entry %s (seq %d)', block.cid, block.entry.seq)
      report(options, 'pharos:publish-post:entry', { ...progress, cid: block.cid, seq: block.entry.seq })
      return { cid: block.cid, seq: block.entry.seq, content: body.cid, block, ...(distribution === undefined ? {} : { private: distribution }) }
    })
    this.publishing = run.catch(() => {})
    return await run
  }

  async waitUntilHeld (cids: readonly CID[], options: WaitUntilHeldOptions): Promise<PinReceipt[] | undefined> {
    if (options.receipts === true && (options.state ?? 'pinned') !== 'pinned') throw new RangeError('receipts are for pinned CIDs: drop state: \'stored\' or receipts')
    await this.waitForStatus(cids, options)
    if (options.receipts !== true) return undefined
    const receipts: PinReceipt[] = []
    for (const cid of cids) {
      this.components.run.requireStarted('receipt')
      receipts.push(await this.receipt(cid, options.signal === undefined ? {} : { signal: options.signal }))
    }
    return receipts
  }

  /**
   * Polls the beacon's `status` until every CID is in the wanted state, and every few seconds
   * re-announces the peer's head with a `heads` request carrying it as `known`, so a beacon
   * that missed the gossip fetches it.
   */
  private async waitForStatus (cids: readonly CID[], options: WaitUntilHeldOptions): Promise<void> {
    const { self, store, sessions, syncClient, log } = this.components
    const want = options.state ?? 'pinned'
    const timeoutMs = options.timeoutMs ?? DEFAULT_HOLD_TIMEOUT_MS
    const timeout = AbortSignal.timeout(timeoutMs)
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
    const satisfied = (status: EntryStatus): boolean => status === 'pinned' || (want === 'stored' && status === 'stored')
    let remaining = [...cids]
    let last: EntryStatus[] = []
    let lastAnnounce = Date.now()
    try {
      while (remaining.length > 0) {
        try {
          const asked = remaining
          last = await sessions.withBeacon('status', { signal }, async (beacon) => await syncClient.status(beacon, asked, { signal }))
          remaining = asked.filter((_, i) => !satisfied(last[i] ?? 'unknown'))
          report(options, 'pharos:wait-until-held:status', {
            statuses: asked.map((cid, i) => ({ cid, status: last[i] ?? 'unknown' })),
            held: cids.length - remaining.length,
            total: cids.length
          })
          if (remaining.length === 0) return
        } catch (err) {
          if (signal.aborted || isDefinitive(err)) throw err
          log('status poll failed; retrying - %e', err)
        }
        if (Date.now() - lastAnnounce >= REANNOUNCE_INTERVAL_MS) {
          lastAnnounce = Date.now()
          await sessions.withBeacon('re-announce', { signal }, async (beacon) => await syncClient.heads(beacon, [self], store.knownHeads([self]), { signal }))
            .catch((err: unknown) => { if (!signal.aborted) log('re-announcing the head failed - %e', err) })
        }
        await delay(STATUS_POLL_INTERVAL_MS, undefined, { signal })
      }
    } catch (err) {
      if (timeout.aborted && options.signal?.aborted !== true) {
        const statuses = remaining.map((cid) => `${cid.toString()}: ${last[cids.indexOf(cid)] ?? 'unknown'}`).join(', ')
        throw new RequestTimeoutError(`waiting for a beacon to hold ${remaining.length} CID(s) ${want} (last status ${statuses})`, timeoutMs)
      }
      throw err
    }
  }

  /**
   * A receipt from the first beacon that gives one, verified: signed by the beacon that
   * answered (Noise authenticated it), of the kind asked for, about exactly that subject.
   */
  async receipt (author: string, options: LogReceiptOptions): Promise<LogReceipt>
  async receipt (cid: CID, options: PinReceiptOptions): Promise<PinReceipt>
  async receipt (subject: string | CID, options: LogReceiptOptions & PinReceiptOptions): Promise<LogReceipt | PinReceipt>
  async receipt (subject: string | CID, options: LogReceiptOptions & PinReceiptOptions): Promise<LogReceipt | PinReceipt> {
    const { sessions, syncClient } = this.components
    const name = subject.toString()
    return await sessions.withBeacon('receipt', options, async (beacon) => {
      const signer = beacon.toString()
      const answer = typeof subject === 'string'
        ? await syncClient.receipt(beacon, options.head === undefined ? { author: subject } : { author: subject, head: options.head }, options)
        : await syncClient.receipt(beacon, { cid: subject }, options)
      if ('notHeld' in answer) throw new NotHeldError(name, answer.notHeld, `${signer}: ${answer.message}`)
      return typeof subject === 'string'
        ? await verifyLogReceipt(answer.statement, { signer, author: subject, ...(options.head === undefined ? {} : { head: options.head }) }, signer)
        : await verifyPinReceipt(answer.statement, { signer, cid: subject, ...(options.scope === undefined ? {} : { scope: options.scope }) }, signer)
    })
  }
}
