/**
 * A peer's side of `/<network>/keyexchange/1.0.0` (docs/private-posts.md "Key flow"): every
 * holder of a content key answers GETKEY, not only beacons.
 *
 * - `deposit` on a direct stream: an author pushing the key of its private post to a reader
 *   it allowed. Taken only from the author itself (the stream's remote peer, authenticated by
 *   Noise, must be the allow-list's signer), only with a rule that names this peer, and only
 *   if the key hashes to the rule's key hash; then held (held-keys.ts) and answered `deposited`;
 * - `getkey` on a direct stream: the key goes back if the shared entitlement check
 *   (services/protocol/src/log/entitlement.ts, the beacon's) admits the stream's remote peer,
 *   else `denied` with the reason and code;
 * - `key` on a direct stream: a holder answering a GETKEY this peer broadcast on the
 *   keyexchange topic. Taken only while such a request is pending, and only if it hashes to
 *   the key hash asked for;
 * - `getkey` broadcast on the keyexchange topic: if this peer holds the key and the check
 *   admits the named requester, it dials the requester and pushes a `key` frame. A denial
 *   goes to nobody (the requester field may be forged); the key only ever goes to the named
 *   requester, over a stream only it can read.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { request, serveRequests } from '@pharos/net/request-response.ts'
import { compareBytes, decodeKeyExchange, encodeKeyExchange, keyExchangeProtocolId, keyHashOf, MAX_KEY_EXCHANGE_FRAME_BYTES } from '@pharos/protocol/log/index.ts'
import type { EntitlementCheck, KeyExchangeMessage } from '@pharos/protocol/log/index.ts'
import { KEY_EXCHANGE_MAX_INBOUND_STREAMS } from './constants.ts'
import { verify } from './held-keys.ts'
import type { HeldKeys } from './held-keys.ts'
import type { AbortOptions, Libp2p, Logger } from '@libp2p/interface'

export interface KeyHolderComponents {
  /** This peer's ID. */
  self: string
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>
  network: string
  held: HeldKeys
  entitlement: EntitlementCheck
  /** Whether a peer is a registered account: PharosPeerInit.isRegistered, else the peer's registry copy (no opinion, so yes, until it has one). */
  isRegistered: ((peerId: string) => boolean) | undefined
  requestMs: number
  log: Logger
}

type Waiter = (key: Uint8Array) => void

const hex = (bytes: Uint8Array): string => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')

export class KeyHolder {
  private readonly components: KeyHolderComponents
  /** GETKEYs this peer broadcast and still waits for, by key hash. */
  private readonly waiting = new Map<string, Set<Waiter>>()

  constructor (components: KeyHolderComponents) {
    this.components = components
  }

  async start (): Promise<void> {
    const { libp2p, network, requestMs, log } = this.components
    await serveRequests(libp2p, keyExchangeProtocolId(network), async (frame, connection, signal) => await this.answer(frame, connection.remotePeer.toString(), signal), {
      maxRequestBytes: MAX_KEY_EXCHANGE_FRAME_BYTES,
      timeoutMs: requestMs,
      maxInboundStreams: KEY_EXCHANGE_MAX_INBOUND_STREAMS,
      onRejected: (connection, err) => { log('key-exchange request from %p failed - %e', connection.remotePeer, err) }
    })
  }

  async stop (): Promise<void> {
    await this.components.libp2p.unhandle(keyExchangeProtocolId(this.components.network)).catch(() => {})
    this.waiting.clear()
  }

  /** Answers one request frame from `peer`; undefined aborts the stream (a malformed frame). */
  async answer (frame: Uint8Array, peer: string, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const decoded = decodeKeyExchange(frame)
    if (!decoded.ok) return undefined
    const response = await this.respond(decoded.value, peer, signal)
    return encodeKeyExchange(response)
  }

  private async respond (message: KeyExchangeMessage, peer: string, signal: AbortSignal): Promise<KeyExchangeMessage> {
    switch (message.t) {
      case 'deposit': return await this.takePushedKey(message.key, message.rule, peer)
      case 'getkey': return await this.getKey(message.keyHash, peer, signal)
      case 'key': return await this.takeAnswer(message.keyHash, message.key)
      default: return { t: 'error', code: 'bad-request', message: `a peer answers deposit, getkey and key, not ${message.t}` }
    }
  }

  private async takePushedKey (key: Uint8Array, rule: Uint8Array, peer: string): Promise<KeyExchangeMessage> {
    const { self, held, log } = this.components
    const refuse = (message: string): KeyExchangeMessage => ({ t: 'error', code: 'bad-request', message })
    const verified = await verify(key, rule)
    if (verified === undefined) return refuse('the rule is not a signed allow-list for this key (its keyHash is the key\'s SHA-256)')
    if (verified.list.author !== peer) return refuse('a peer takes a key only from the author who signed its rule')
    if (!verified.list.peers.includes(self)) return refuse('this peer is not on the rule\'s allow-list')
    const result = await held.hold(verified)
    if (result === 'older-rule') return refuse('a newer rule for this key is held')
    if (result === 'full') return { t: 'error', code: 'unavailable', message: 'this peer holds as many pushed keys as it keeps' }
    log('holding a content key pushed by its author %s', peer)
    return { t: 'deposited', keyHash: verified.keyHash }
  }

  /** The key for `requester` if held and the entitlement check admits it, else why not. */
  private async getKey (keyHash: Uint8Array, requester: string, signal: AbortSignal): Promise<KeyExchangeMessage> {
    const { held, entitlement, isRegistered } = this.components
    if (isRegistered !== undefined && !isRegistered(requester)) return { t: 'denied', reason: 'not a registered account', code: 'unregistered' }
    const key = held.get(keyHash)
    if (key === undefined) return { t: 'denied', reason: 'no key with that hash is held here', code: 'unknown-key' }
    const decision = await entitlement({
      requester,
      record: { keyHash, author: key.list.author, ruleVersion: key.list.version },
      listed: key.list.peers.includes(requester),
      rule: async () => key.rule
    }, signal)
    if (!decision.allowed) return { t: 'denied', reason: decision.reason, code: 'not-entitled' }
    return { t: 'key', keyHash, key: key.key }
  }

  private async takeAnswer (keyHash: Uint8Array, key: Uint8Array): Promise<KeyExchangeMessage> {
    const waiters = this.waiting.get(hex(keyHash))
    if (waiters === undefined) return { t: 'error', code: 'bad-request', message: 'no GETKEY of this peer is pending for that key hash' }
    if (compareBytes(await keyHashOf(key), keyHash) !== 0) return { t: 'error', code: 'bad-request', message: 'the key does not hash to its key hash' }
    for (const waiter of waiters) waiter(key)
    return { t: 'deposited', keyHash }
  }

  /**
   * Resolves with the key a holder pushes in answer to this peer's GETKEY on the topic (its
   * hash checked), or undefined when `options.signal` ends first. Register before broadcasting.
   */
  async waitForPushedKey (keyHash: Uint8Array, options: Required<AbortOptions>): Promise<Uint8Array | undefined> {
    const id = hex(keyHash)
    const waiters = this.waiting.get(id) ?? new Set<Waiter>()
    this.waiting.set(id, waiters)
    let waiter: Waiter = () => {}
    let onAbort = (): void => {}
    try {
      return await new Promise<Uint8Array | undefined>((resolve) => {
        waiter = resolve
        onAbort = () => { resolve(undefined) }
        waiters.add(waiter)
        if (options.signal.aborted) resolve(undefined)
        options.signal.addEventListener('abort', onAbort, { once: true })
      })
    } finally {
      options.signal.removeEventListener('abort', onAbort)
      waiters.delete(waiter)
      if (waiters.size === 0) this.waiting.delete(id)
    }
  }

  /** A `getkey` from the keyexchange topic: push the key to its requester if held and entitled. */
  async onTopicRequest (payload: Uint8Array): Promise<void> {
    const { self, libp2p, network, requestMs, log } = this.components
    const decoded = decodeKeyExchange(payload)
    if (!decoded.ok || decoded.value.t !== 'getkey' || decoded.value.requester === undefined || decoded.value.requester === self) return
    const { keyHash, requester } = decoded.value
    if (this.components.held.get(keyHash) === undefined) return
    const signal = AbortSignal.timeout(requestMs)
    const answer = await this.getKey(keyHash, requester, signal)
    if (answer.t !== 'key') return
    try {
      // The requester acknowledges with `deposited` (what it answers is not needed here).
      await request(libp2p, peerIdFromString(requester), keyExchangeProtocolId(network), encodeKeyExchange(answer), { signal, maxResponseBytes: MAX_KEY_EXCHANGE_FRAME_BYTES, what: 'key push' })
      log('pushed a content key to %s, who asked on the keyexchange topic', requester)
    } catch (err) {
      log('could not push a content key to its requester %s - %e', requester, err)
    }
  }
}
