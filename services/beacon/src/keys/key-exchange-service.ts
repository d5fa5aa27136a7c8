/**
 * The beacon's side of key exchange (DESIGN.md §4, protocol in services/protocol/src/log/
 * key-exchange.ts):
 *
 * - both only for registered accounts: a stream from any other peer is answered with an
 *   error before its frame is decoded or storage is asked anything (issue 17, item 8);
 * - `deposit` on `/<network>/keyexchange/1.0.0`: only the author may deposit (the stream's
 *   remote peer must be the allow-list's signer), the key must hash to the rule's key hash.
 *   The frame's size is bounded before it is decoded (MAX_KEY_EXCHANGE_FRAME_BYTES), and the
 *   allow-list is parsed and its signature verified once, here: its readers are indexed in
 *   the same transaction as the key;
 * - `getkey` on the same protocol: the key goes back on that stream — a direct,
 *   Noise-encrypted stream to the authenticated requester — if the entitlement check
 *   admits it, else `denied` with the reason. The default check reads the readers' index:
 *   one index probe per request, whatever the list's size;
 * - `getkey` broadcast on the `keyexchange` overlay topic: if the check admits the named
 *   requester, the worker dials it and pushes a `key` frame on a direct stream. The topic
 *   only carries the request; the key itself never goes over gossip. A forged requester
 *   field only makes us send the key to that (entitled) peer, over a stream only it can read.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Libp2p } from '@libp2p/interface'
import {
  decodeKeyExchange,
  encodeKeyExchange,
  keyExchangeProtocolId,
  keyHashOf,
  openAllowList
} from '@pharos/protocol/log/index.ts'
import type { KeyExchangeMessage } from '@pharos/protocol/log/index.ts'
import type { Logger } from '../logging/logger.ts'
import type { ContentKeyLookup, ContentKeyRecord, ContentKeyStore } from './content-key-store.ts'
import type { EntitlementCheck } from './entitlement.ts'
import { SealedKeyCorruptError, SealingKeyMissingError } from './key-sealing.ts'

export type KeyExchangeOutcome = 'deposited' | 'deposit-refused' | 'key-sent' | 'denied' | 'unknown-key' | 'unregistered' | 'malformed' |
  /** The key was sealed under a version this worker was not given (PHAROS_KEY_SEALING_SECRET). */
  'sealing-key-missing' |
  /** The stored seal did not verify: the row was altered or moved. */
  'sealed-key-corrupt' |
  /** This worker has no sealing key, so no key-exchange role: every request is refused. */
  'role-off'

/**
 * Why a worker without a sealing key refuses key exchange: the answer a peer gets (code
 * `unavailable`, so it asks another beacon or the author) and what the start log says.
 */
export const KEY_EXCHANGE_OFF = 'this beacon holds no content keys: it was started without PHAROS_KEY_SEALING_SECRET, so it takes no deposits and answers no getkey; ask another beacon or the author'

/** The answer of a worker without the key-exchange role to any key-exchange request. */
export function keyExchangeOffAnswer (): Uint8Array {
  return encodeKeyExchange({ t: 'error', code: 'unavailable', message: KEY_EXCHANGE_OFF })
}

export interface KeyExchangeDeps {
  keys: Pick<ContentKeyStore, 'deposit' | 'lookup' | 'rule' | 'indexReaders'>
  entitlement: EntitlementCheck
  isRegistered: (peerId: string) => boolean
  node: Pick<Libp2p, 'dialProtocol'>
  network: string
  log: Logger
  onOutcome?: (outcome: KeyExchangeOutcome) => void
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((byte, i) => byte === b[i])

const NOT_REGISTERED = 'not a registered account: key exchange (deposit and getkey) is for registered accounts only'

/** How long a pushed key may take to reach a requester that asked over the topic (guess). */
const PUSH_TIMEOUT_MS = 10_000

export class KeyExchangeService {
  private readonly deps: KeyExchangeDeps
  private readonly log: Logger

  constructor (deps: KeyExchangeDeps) {
    this.deps = deps
    this.log = deps.log.child({ component: 'key-exchange' })
  }

  /** Answers one request frame from `peer` on the direct protocol; undefined aborts the stream. */
  async answer (frame: Uint8Array, peer: string, signal: AbortSignal): Promise<Uint8Array | undefined> {
    // Before the frame is decoded: an unregistered peer costs its stream and nothing more.
    if (!this.deps.isRegistered(peer)) {
      this.count('unregistered')
      return encodeKeyExchange({ t: 'error', code: 'bad-request', message: NOT_REGISTERED })
    }
    const decoded = decodeKeyExchange(frame)
    if (!decoded.ok) {
      this.count('malformed')
      return undefined
    }
    const response = await this.respond(decoded.value, peer, signal)
    return response === undefined ? undefined : encodeKeyExchange(response)
  }

  /** A `getkey` from the keyexchange topic: push the key to its requester if entitled. */
  async onTopicRequest (payload: Uint8Array): Promise<void> {
    const decoded = decodeKeyExchange(payload)
    if (!decoded.ok || decoded.value.t !== 'getkey' || decoded.value.requester === undefined) {
      this.count('malformed')
      return
    }
    const { keyHash, requester } = decoded.value
    const signal = AbortSignal.timeout(PUSH_TIMEOUT_MS)
    const answer = await this.getKey(keyHash, requester, signal)
    // Only a key is pushed: a denial goes to nobody (the requester may not be who asked).
    if (answer.t !== 'key') return
    try {
      const stream = await this.deps.node.dialProtocol(peerIdFromString(requester), keyExchangeProtocolId(this.deps.network), { signal })
      await lpStream(stream).write(encodeKeyExchange(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      this.log.info({ err, requester }, 'could not push a key to its requester')
    }
  }

  private async respond (message: KeyExchangeMessage, peer: string, signal: AbortSignal): Promise<KeyExchangeMessage | undefined> {
    switch (message.t) {
      case 'deposit': return await this.deposit(message.key, message.rule, peer)
      case 'getkey': return await this.getKey(message.keyHash, peer, signal)
      default:
        this.count('malformed')
        return { t: 'error', code: 'bad-request', message: `a beacon answers deposit and getkey, not ${message.t}` }
    }
  }

  private async deposit (key: Uint8Array, rule: Uint8Array, peer: string): Promise<KeyExchangeMessage> {
    const refuse = (message: string): KeyExchangeMessage => {
      this.count('deposit-refused')
      return { t: 'error', code: 'bad-request', message }
    }
    // `answer` checked the registration and decodeKeyExchange the frame's size; only now is
    // the rule parsed and its signature verified, once: GETKEY reads the readers' index.
    const list = await openAllowList(rule)
    if (!list.ok) return refuse(`rule: ${list.detail}`)
    if (list.value.author !== peer) return refuse('only the author who signed the rule may deposit its key')
    const keyHash = await keyHashOf(key)
    if (!sameBytes(keyHash, list.value.keyHash)) return refuse('the key does not hash to the rule\'s keyHash (SHA-256)')
    const stored = await this.deps.keys.deposit({ keyHash, author: peer, key, rule, ruleVersion: list.value.version }, list.value.peers)
    if (!stored) return refuse('a newer rule for this key is stored, or the key belongs to another author')
    this.count('deposited')
    this.log.info({ author: peer, version: list.value.version, readers: list.value.peers.length }, 'content key deposited')
    return { t: 'deposited', keyHash }
  }

  private async getKey (keyHash: Uint8Array, requester: string, signal: AbortSignal): Promise<KeyExchangeMessage> {
    // Before any lookup: only a registered account may receive a key (over the topic, the
    // named requester; on a stream, `answer` refused others already).
    if (!this.deps.isRegistered(requester)) {
      this.count('unregistered')
      return { t: 'denied', reason: NOT_REGISTERED, code: 'unregistered' }
    }
    let found: ContentKeyLookup | undefined
    try {
      found = await this.deps.keys.lookup(keyHash, requester)
    } catch (err) {
      // A key this worker cannot open is its operator's problem, not the requester's: the
      // requester is told the key is unavailable here (it may ask another holder), the
      // operator gets a warning and pharos_keyexchange_requests_total{outcome} counts it.
      if (err instanceof SealingKeyMissingError) {
        this.count('sealing-key-missing')
        this.log.warn({ version: err.version }, 'a GETKEY asked for a content key sealed under a version PHAROS_KEY_SEALING_SECRET does not hold; add that version back to serve it')
        return { t: 'error', code: 'unavailable', message: 'this beacon cannot open that key: it was sealed under a sealing key this beacon no longer holds' }
      }
      if (err instanceof SealedKeyCorruptError) {
        this.count('sealed-key-corrupt')
        this.log.error({ err }, 'a stored content key failed its seal\'s authentication: the row was altered or moved')
        return { t: 'error', code: 'unavailable', message: 'this beacon cannot open that key: its stored copy is damaged' }
      }
      throw err
    }
    if (found === undefined) {
      this.count('unknown-key')
      return { t: 'denied', reason: 'no key with that hash was deposited here', code: 'unknown-key' }
    }
    const { record } = found
    const listed = found.readersIndexed ? found.listed : await this.indexLegacyReaders(record, requester)
    const rule = async (): Promise<Uint8Array> => {
      const stored = await this.deps.keys.rule(keyHash)
      if (stored === undefined) throw new Error('the key was removed')
      return stored.rule
    }
    const decision = await this.deps.entitlement({ requester, record, listed, rule }, signal)
    if (!decision.allowed) {
      this.count('denied')
      return { t: 'denied', reason: decision.reason, code: 'not-entitled' }
    }
    this.count('key-sent')
    return { t: 'key', keyHash, key: record.key }
  }

  /**
   * A key deposited before readers were indexed (migration 009): its rule is verified and its
   * readers written once, by the first GETKEY for it. Whether they name `requester` (never,
   * if the stored rule does not verify: then only the author is entitled).
   */
  private async indexLegacyReaders (record: ContentKeyRecord, requester: string): Promise<boolean> {
    const stored = await this.deps.keys.rule(record.keyHash)
    if (stored === undefined) return false
    const list = await openAllowList(stored.rule)
    if (!list.ok || list.value.author !== record.author) {
      this.log.warn({ author: record.author }, 'a stored content-key rule does not verify; its key is given to nobody but its author')
      return false
    }
    await this.deps.keys.indexReaders(record.keyHash, stored.ruleVersion, list.value.peers)
    return list.value.peers.includes(requester)
  }

  private count (outcome: KeyExchangeOutcome): void {
    this.deps.onOutcome?.(outcome)
  }
}
