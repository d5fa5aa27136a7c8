/**
 * HEAD requests on the `sync` topic (docs/logs.md "HEAD requests"), both ways: the peer asks
 * the topic for the heads of the authors it follows, and as a seeder it answers others'
 * requests by announcing the better heads it holds.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import type { OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import type { SyncClient } from '@pharos/net/clients/sync-client.ts'
import { HEAD_REQUEST_LIMITS, messageIdOf, newerHeads, openHeadRequest, signHeadRequest } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer, HeadWant } from '@pharos/protocol/log/index.ts'
import { HEAD_ANSWER_ASKERS_MAX, HEAD_ANSWER_INTERVAL_MS, HEAD_REQUEST_INTERVAL_MS, HEAD_REQUEST_RETRY_MS } from './constants.ts'
import type { FollowedAuthors } from './followed-authors.ts'
import type { PeerRun } from './lifecycle.ts'
import type { LocalLog } from './local-log.ts'
import type { Libp2p, Logger } from '@libp2p/interface'

export interface HeadRequestsComponents {
  /** This peer's ID as a string: it asks about others, and ignores its own requests. */
  self: string
  signer: Ed25519Signer
  libp2p: Pick<Libp2p, 'getConnections'>
  overlay: Pick<OverlayDriver, 'snapshot' | 'broadcast'>
  syncClient: Pick<SyncClient, 'announce'>
  store: LocalLog
  followed: Pick<FollowedAuthors, 'has'>
  run: PeerRun
  log: Logger
}

export class HeadRequests {
  private readonly components: HeadRequestsComponents
  /** Authors to ask the `sync` topic about at the next HEAD request, and when that goes out. */
  private readonly asks = new Set<string>()
  private askTimer: NodeJS.Timeout | undefined
  private lastAskAt = -Infinity
  /** Askers of HEAD requests this peer answered, and when (bounded, oldest forgotten first). */
  private readonly answers = new Map<string, number>()

  constructor (components: HeadRequestsComponents) {
    this.components = components
  }

  /** Forgets the asks still waiting (on stop). */
  stop (): void {
    clearTimeout(this.askTimer)
    this.askTimer = undefined
    this.asks.clear()
  }

  /**
   * Asks the `sync` topic for the heads of `authors` (docs/logs.md "HEAD requests"): a signed
   * request naming the head we hold of each, at most one every HEAD_REQUEST_INTERVAL_MS and
   * 32 authors each; the rest wait for the next. Seeders that hold better heads announce them
   * to us over the sync protocol, and `LogSync.onKnownHeads` fetches them.
   */
  ask (authors: readonly string[]): void {
    for (const author of authors) if (author !== this.components.self) this.asks.add(author)
    if (this.asks.size === 0 || this.askTimer !== undefined) return
    const wait = Math.max(0, this.lastAskAt + HEAD_REQUEST_INTERVAL_MS - Date.now())
    this.sendAfter(wait)
  }

  private sendAfter (wait: number): void {
    this.askTimer = setTimeout(() => {
      this.askTimer = undefined
      void this.send().catch((err: unknown) => { this.components.log('head request not sent - %e', err) })
    }, wait)
    this.askTimer.unref?.()
  }

  private async send (): Promise<void> {
    const { overlay, store, followed, signer, run } = this.components
    if (!run.started) return
    if ((overlay.snapshot().sync?.active.length ?? 0) === 0) {
      // A broadcast with no neighbour goes nowhere (just after start the sync topic may still
      // be joining): ask once it has one.
      this.sendAfter(HEAD_REQUEST_RETRY_MS)
      return
    }
    const wants: HeadWant[] = []
    for (const author of this.asks) {
      if (wants.length >= HEAD_REQUEST_LIMITS.authors) break
      this.asks.delete(author)
      if (!followed.has(author)) continue
      const held = store.head(author)
      wants.push(held === undefined ? { author } : { author, held: { cid: held.cid, seq: held.entry.seq } })
    }
    if (wants.length > 0) {
      this.lastAskAt = Date.now()
      const payload = await signHeadRequest(wants, this.lastAskAt, signer)
      const messageId = await messageIdOf('sync', payload)
      if (messageId !== undefined && run.started) overlay.broadcast('sync', messageId, payload)
    }
    if (this.asks.size > 0) this.ask([])
  }

  /**
   * A HEAD request from the topic: for the authors we hold a better head of than the asker,
   * announce those heads to it (a sync `heads` request carrying them as `known`). Only over a
   * connection we already hold to the asker (a broadcast never makes us dial), and to one
   * asker at most once every HEAD_ANSWER_INTERVAL_MS.
   */
  async answer (payload: Uint8Array): Promise<void> {
    const { self, libp2p, store, syncClient, run } = this.components
    const opened = await openHeadRequest(payload, Date.now())
    if (!opened.ok || opened.value.asker === self) return
    const { asker, wants } = opened.value
    const held = new Map<string, { cid: CID, seq: number }>()
    for (const want of wants) {
      const head = store.head(want.author)
      if (head !== undefined) held.set(want.author, { cid: head.cid, seq: head.entry.seq })
    }
    const known = newerHeads(wants, held)
    if (known.length === 0) return
    const peer = peerIdFromString(asker)
    if (!libp2p.getConnections(peer).some((connection) => connection.status === 'open' && connection.limits === undefined)) return
    const now = Date.now()
    const last = this.answers.get(asker)
    if (last !== undefined && now - last < HEAD_ANSWER_INTERVAL_MS) return
    this.answers.delete(asker)
    this.answers.set(asker, now)
    for (const oldest of this.answers.keys()) {
      if (this.answers.size <= HEAD_ANSWER_ASKERS_MAX) break
      this.answers.delete(oldest)
    }
    await syncClient.announce(peer, known, { signal: run.signal })
  }
}
