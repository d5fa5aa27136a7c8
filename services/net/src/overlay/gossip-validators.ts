/**
 * What each overlay topic forwards (validate, then forward: issue 18). The driver hands every
 * first receipt to its topic's validator and forwards it only on `accept`; a `reject` penalises
 * the neighbour that sent it, an `ignore` drops it and blames nobody. These are the checks that
 * need no storage, shared by the beacon and the peer SDK; the beacon checks `content` with its
 * ingest pipeline instead (LogIngest.checkEnvelope: the same checks, plus bans and metrics).
 * What a validator decoded is kept for the delivery it leads to (`AcceptedPayloads`), so the
 * application does not check the same signatures again.
 *
 * | topic | forwarded when |
 * |---|---|
 * | `content` | a publish envelope within MAX_ENVELOPE_BYTES whose publisher signed it, around an entry that decodes strictly, whose author signed it, and whose author is registered (where the node knows the registry) |
 * | `keyexchange` | a `getkey` frame naming a requester (registered, where known) |
 * | `audit` | an audit report a worker signed, of the right shape |
 * | `sync` | a HEAD request its asker signed, within its age bounds, from a registered asker (where known) |
 */
import { setNewest } from '@pharos/protocol/bounded-map.ts'
import { openAuditReport } from '@pharos/protocol/audit/index.ts'
import { decodeEntry, decodeKeyExchange, openEnvelope, openHeadRequest, verifyEntry } from '@pharos/protocol/log/index.ts'
import type { EntryBlock } from '@pharos/protocol/log/index.ts'
import type { Verdict } from '@pharos/protocol/overlay/index.ts'
import type { GossipValidator } from './overlay-driver.ts'

/** Whether a peer ID is a registered account; undefined where the node does not know the registry. */
export type RegistryCheck = ((peerId: string) => boolean) | undefined

/**
 * What a validator made of the payloads it accepted, until the deliveries they lead to take
 * it: the driver delivers an accepted message right after its verdict, with the same payload.
 * Bounded, oldest dropped; a delivery that finds nothing (or another payload under the ID)
 * checks again.
 */
export class AcceptedPayloads<T> {
  readonly #kept = new Map<string, { payload: Uint8Array, value: T }>()
  readonly #max: number

  constructor (max: number) {
    this.#max = max
  }

  keep (messageId: string, payload: Uint8Array, value: T): void {
    setNewest(this.#kept, messageId, { payload, value }, this.#max)
  }

  /** What was kept for this very payload, once. */
  take (messageId: string, payload: Uint8Array): T | undefined {
    const kept = this.#kept.get(messageId)
    this.#kept.delete(messageId)
    return kept?.payload === payload ? kept.value : undefined
  }

  forget (messageId: string): void {
    this.#kept.delete(messageId)
  }

  clear (): void {
    this.#kept.clear()
  }
}

/** An entry whose author signature failed, inside an envelope its publisher signed. */
export interface Forgery {
  /** The envelope's signer: who vouched for the forged entry (the one to ban). */
  publisher: string
  /** The neighbour that handed it to us (maybe only forwarding it). */
  from: string
  /** The author the entry claims. */
  author: string
  cid: string
  /** Why the author signature failed. */
  code: string
}

export interface ContentValidatorOptions {
  /**
   * Told of each forgery (the payload is rejected either way): the peer SDK bans the
   * publisher, as a beacon's ingest does (LogIngest.punishForgery).
   */
  onForgery?: (forgery: Forgery) => void
  /** Envelopes of a banned publisher are not forwarded (ignored: the forwarder is not to blame). */
  isBanned?: (peer: string) => boolean
}

/**
 * `content`, without storage: the envelope and its publisher's signature, the entry, its
 * author's signature, and (with a registry) the author's registration. The entry of an
 * accepted payload goes to `accepted`, if given.
 */
export function contentValidator (isRegistered: RegistryCheck, accepted?: AcceptedPayloads<EntryBlock>, options: ContentValidatorOptions = {}): GossipValidator {
  return async ({ messageId, payload, from }) => {
    const envelope = await openEnvelope(payload)
    if (!envelope.ok) return 'reject'
    const { publisher } = envelope.value
    if (options.isBanned?.(publisher) === true) return 'ignore'
    const decoded = await decodeEntry(envelope.value.entry)
    if (!decoded.ok) return 'reject'
    const verified = await verifyEntry(decoded.value.entry)
    if (!verified.ok) {
      options.onForgery?.({ publisher, from, author: decoded.value.entry.author, cid: decoded.value.cid.toString(), code: verified.code })
      return 'reject'
    }
    const verdict = registered(isRegistered, decoded.value.entry.author)
    if (verdict === 'accept') accepted?.keep(messageId, payload, decoded.value)
    return verdict
  }
}

/** `keyexchange`: a `getkey` that names its requester (who must be registered, where known). */
export function keyExchangeValidator (isRegistered: RegistryCheck): GossipValidator {
  return ({ payload }) => {
    const decoded = decodeKeyExchange(payload)
    if (!decoded.ok || decoded.value.t !== 'getkey' || decoded.value.requester === undefined) return 'reject'
    return registered(isRegistered, decoded.value.requester)
  }
}

/** `audit`: a signed audit report (docs/audits.md). */
export const auditValidator: GossipValidator = async ({ payload }) => (await openAuditReport(payload)).ok ? 'accept' : 'reject'

/**
 * `sync`: a signed HEAD request (protocol/src/log/head-request.ts) from a registered asker. One
 * that went stale on its way is ignored, not rejected: the neighbour that forwarded it checked
 * it while it was fresh, and is not to blame for the overlay's latency.
 */
export function syncValidator (isRegistered: RegistryCheck): GossipValidator {
  return async ({ payload }) => {
    const opened = await openHeadRequest(payload, Date.now())
    if (!opened.ok) return opened.code === 'stale' ? 'ignore' : 'reject'
    return registered(isRegistered, opened.value.asker)
  }
}

/**
 * Registration is `accept` or `ignore`, never `reject`: what fails it is well formed and
 * correctly signed, and a neighbour that does not know the registry (an app's peer, most of
 * the time) forwards it in good faith. Blaming that neighbour would let an attacker get honest
 * peers dropped by feeding them unregistered authors' entries. Not forwarding it is what
 * matters; the data budget bounds what sending such entries costs us.
 */
function registered (isRegistered: RegistryCheck, peer: string): Verdict {
  return isRegistered === undefined || isRegistered(peer) ? 'accept' : 'ignore'
}
