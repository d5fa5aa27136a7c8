/**
 * Keys of private content (docs/private-posts.md "Key flow"):
 *
 * - `deposit`: a key deposited with a beacon under an allow-list this peer signs;
 * - `distribute`: a new private post's key is held by its author, deposited with a beacon
 *   only if the author allows it, and pushed to a random subset of the allowed readers that
 *   are online, over direct (Noise-encrypted) streams;
 * - `find`: the key of a post this peer reads, from whoever holds it and admits this peer:
 *   its own store, the beacons it is connected to, the author, a few peers it is connected
 *   to, then any holder that answers a GETKEY broadcast on the keyexchange topic (other
 *   allowed readers the author pushed it to). KeyDeniedError says why when none gives it.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { KeyExchangeClient } from '@pharos/net/clients/key-exchange-client.ts'
import type { OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import { setNewest } from '@pharos/protocol/bounded-map.ts'
import { compareBytes, encodeKeyExchange, KEY_BYTES, keyHashOf, messageIdOf, signAllowList } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer } from '@pharos/protocol/log/index.ts'
import type { BeaconSessions } from './beacon-sessions.ts'
import { FETCHED_KEYS_MAX, KEY_ASK_NEIGHBOURS, KEY_PUSH_FANOUT, KEY_TOPIC_WAIT_MS } from './constants.ts'
import { KeyDeniedError } from './errors.ts'
import { asError } from './failures.ts'
import { verify } from './held-keys.ts'
import type { HeldKeys } from './held-keys.ts'
import type { KeyHolder } from './key-holder.ts'
import type { AbortOptions, Libp2p, Logger, PeerId } from '@libp2p/interface'

/** A key deposit: the symmetric key of private content, who may get it, and the rule's version. */
export interface KeyDeposit {
  key: Uint8Array
  /** SHA-256 of `key`; computed when absent, checked when given. */
  keyHash?: Uint8Array
  /** Peer IDs the beacon may hand the key to. */
  allow: string[]
  /** A higher version replaces a lower one (adding or removing readers). */
  version: number
}

/** Who gets a private post's key besides its author. */
export interface KeyDistribution {
  /** Peer IDs that may read the post. */
  allow: string[]
  /** Deposit the key with a beacon too (it then answers GETKEY while the author is offline). */
  beacons: boolean
  /** How many online allowed readers the key is pushed to, at most. @default KEY_PUSH_FANOUT (8) */
  pushTo?: number
}

/** What became of a private post's key. */
export interface KeyDistributionReport {
  keyHash: Uint8Array
  /** Whether a beacon took the key (only ever with `beacons: true`). */
  deposited: boolean
  /** The allowed readers that took the pushed key. */
  pushedTo: string[]
}

export interface ContentKeysComponents {
  self: string
  signer: Ed25519Signer
  keyClient: Pick<KeyExchangeClient, 'deposit' | 'getKey'>
  sessions: Pick<BeaconSessions, 'withBeacon' | 'connected'>
  held: HeldKeys
  holder: Pick<KeyHolder, 'waitForPushedKey'>
  libp2p: Pick<Libp2p, 'getConnections' | 'peerStore'>
  overlay: Pick<OverlayDriver, 'broadcast'>
  log: Logger
}

/** Fisher–Yates, so every subset of readers is as likely to be pushed to. */
function shuffled<T> (items: readonly T[]): T[] {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const swap = copy[i] as T
    copy[i] = copy[j] as T
    copy[j] = swap
  }
  return copy
}

const hex = (bytes: Uint8Array): string => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')

/** How much a denial says: a refusal by rule over a wrong key over nobody having it. */
const DENIAL_RANK: Record<KeyDeniedError['code'], number> = { 'not-entitled': 4, unregistered: 3, 'key-hash-mismatch': 2, 'unknown-key': 1, 'no-holder-online': 0 }

export class ContentKeys {
  private readonly components: ContentKeysComponents
  /** Keys this peer got as a reader, newest kept (it holds no rule for them, so it does not hand them out). */
  private readonly fetched = new Map<string, Uint8Array>()

  constructor (components: ContentKeysComponents) {
    this.components = components
  }

  async deposit (deposit: KeyDeposit, options: AbortOptions): Promise<{ keyHash: Uint8Array }> {
    const { signer, keyClient, sessions } = this.components
    if (deposit.key.length < KEY_BYTES.min || deposit.key.length > KEY_BYTES.max) throw new RangeError(`a content key is ${KEY_BYTES.min}..${KEY_BYTES.max} bytes, not ${deposit.key.length}`)
    const keyHash = await keyHashOf(deposit.key)
    if (deposit.keyHash !== undefined && compareBytes(deposit.keyHash, keyHash) !== 0) throw new RangeError('keyHash is not the SHA-256 of key')
    const rule = await signAllowList({ keyHash, version: deposit.version, peers: deposit.allow }, signer)
    await sessions.withBeacon('key deposit', options, async (beacon) => { await keyClient.deposit(beacon, deposit.key, rule, options) })
    return { keyHash }
  }

  /** The key whose SHA-256 is `keyHash`, from a beacon only (`PharosPeer.getKey`). */
  async get (keyHash: Uint8Array, options: AbortOptions): Promise<Uint8Array> {
    const { keyClient, sessions } = this.components
    return await sessions.withBeacon('getkey', options, async (beacon) => await keyClient.getKey(beacon, keyHash, options))
  }

  /**
   * A new private post's key: signs the allow-list, holds the key (the author answers GETKEY
   * for it), deposits it with a beacon if `beacons` (a failure there fails the publish: the
   * author asked for it), then pushes it to up to `pushTo` allowed readers that are online.
   */
  async distribute (key: Uint8Array, distribution: KeyDistribution, options: AbortOptions): Promise<KeyDistributionReport> {
    const { self, signer, keyClient, sessions, held } = this.components
    const keyHash = await keyHashOf(key)
    const allow = [...new Set(distribution.allow)]
    const rule = await signAllowList({ keyHash, version: 1, peers: allow }, signer)
    const own = await verify(key, rule)
    if (own === undefined) throw new Error('a freshly signed allow-list did not verify')
    await held.hold(own)
    let deposited = false
    if (distribution.beacons) {
      await sessions.withBeacon('key deposit', options, async (beacon) => { await keyClient.deposit(beacon, key, rule, options) })
      deposited = true
    }
    const pushedTo = await this.push(key, rule, allow.filter((peer) => peer !== self), distribution.pushTo ?? KEY_PUSH_FANOUT, options)
    return { keyHash, deposited, pushedTo }
  }

  /**
   * Pushes the key (a `deposit` frame, the rule the reader checks) to readers that are
   * online: connected ones first, then ones whose addresses this peer knows, in random order,
   * in rounds of at most `fanout` at once until `fanout` have taken it or none is left.
   */
  private async push (key: Uint8Array, rule: Uint8Array, readers: string[], fanout: number, options: AbortOptions): Promise<string[]> {
    const { keyClient, libp2p, log } = this.components
    if (fanout <= 0) return []
    const connected: PeerId[] = []
    const known: PeerId[] = []
    for (const reader of shuffled(readers)) {
      let peer: PeerId
      try {
        peer = peerIdFromString(reader)
      } catch {
        continue
      }
      if (libp2p.getConnections(peer).some((connection) => connection.status === 'open')) connected.push(peer)
      else if (((await libp2p.peerStore.get(peer).catch(() => undefined))?.addresses.length ?? 0) > 0) known.push(peer)
    }
    const candidates = [...connected, ...known]
    const pushed: string[] = []
    while (pushed.length < fanout && candidates.length > 0) {
      const round = candidates.splice(0, fanout - pushed.length)
      const results = await Promise.allSettled(round.map(async (peer) => { await keyClient.deposit(peer, key, rule, options) }))
      results.forEach((result, i) => {
        const peer = round[i]?.toString() ?? '?'
        if (result.status === 'fulfilled') pushed.push(peer)
        else log('pushing a content key to reader %s failed - %e', peer, result.reason)
      })
      options.signal?.throwIfAborted()
    }
    return pushed
  }

  /**
   * The key of a private post by `author` whose SHA-256 is `keyHash`. Asks, in order: its own
   * store; each connected beacon; the author; up to KEY_ASK_NEIGHBOURS other peers it is
   * connected to; then every holder, through a GETKEY broadcast
   * on the keyexchange topic, waiting up to `topicWaitMs` for one to push the key. A refusal
   * by rule ends the search (asking on would not change the rule). Every key is checked
   * against `keyHash`. Throws KeyDeniedError with the most telling reason met.
   */
  async find (keyHash: Uint8Array, author: string, options: AbortOptions & { topicWaitMs?: number }): Promise<Uint8Array> {
    const { self, keyClient, sessions, held, holder, libp2p, overlay, log } = this.components
    const id = hex(keyHash)
    const local = held.get(keyHash)?.key ?? this.fetched.get(id)
    if (local !== undefined) return local
    let denial: KeyDeniedError | undefined
    const noteDenial = (err: KeyDeniedError): void => {
      if (denial === undefined || DENIAL_RANK[err.code] > DENIAL_RANK[denial.code]) denial = err
    }
    const ask = async (peer: PeerId): Promise<Uint8Array | undefined> => {
      try {
        const key = await keyClient.getKey(peer, keyHash, options)
        setNewest(this.fetched, id, key, FETCHED_KEYS_MAX)
        return key
      } catch (err) {
        options.signal?.throwIfAborted()
        if (err instanceof KeyDeniedError) noteDenial(err)
        else log('getkey from %p failed - %e', peer, err)
        return undefined
      }
    }
    const definitive = (): boolean => denial !== undefined && (denial.code === 'not-entitled' || denial.code === 'unregistered')
    const beacons = await sessions.connected(options).catch((err: unknown) => { log('no beacon to ask for a key - %e', asError(err)); return [] })
    for (const beacon of beacons) {
      const key = await ask(beacon)
      if (key !== undefined) return key
      if (definitive()) throw denial as KeyDeniedError
    }
    if (author !== self) {
      const key = await ask(peerIdFromString(author))
      if (key !== undefined) return key
      if (definitive()) throw denial as KeyDeniedError
    }
    // Peers this one is connected to (overlay neighbours, peers the app dialled) may be readers
    // the author pushed the key to: a direct GETKEY to each of a bounded number, all at once.
    const isBeacon = (peer: PeerId): boolean => beacons.some((beacon) => beacon.equals(peer))
    const neighbours = [...new Map(libp2p.getConnections().filter((connection) => connection.status === 'open')
      .map((connection) => [connection.remotePeer.toString(), connection.remotePeer])).values()]
      .filter((peer) => !isBeacon(peer) && peer.toString() !== author)
    const answers = await Promise.all(shuffled(neighbours).slice(0, KEY_ASK_NEIGHBOURS).map(ask))
    const fromNeighbour = answers.find((key) => key !== undefined)
    if (fromNeighbour !== undefined) return fromNeighbour
    if (definitive()) throw denial as KeyDeniedError
    // Any other holder (a reader the author pushed the key to): ask the topic, wait for a push.
    const payload = encodeKeyExchange({ t: 'getkey', keyHash, requester: self })
    const wait = AbortSignal.timeout(options.topicWaitMs ?? KEY_TOPIC_WAIT_MS)
    const waiting = holder.waitForPushedKey(keyHash, { signal: options.signal === undefined ? wait : AbortSignal.any([options.signal, wait]) })
    overlay.broadcast('keyexchange', await messageIdOf('keyexchange', payload) ?? '', payload)
    const pushed = await waiting
    options.signal?.throwIfAborted()
    if (pushed !== undefined) {
      setNewest(this.fetched, id, pushed, FETCHED_KEYS_MAX)
      return pushed
    }
    if (denial !== undefined && denial.code !== 'unknown-key') throw denial
    throw new KeyDeniedError(`${beacons.length} beacon(s), the author and the keyexchange topic`, 'no holder that would give this peer the key answered: the author is offline and no beacon or other allowed reader online holds it', 'no-holder-online')
  }
}
