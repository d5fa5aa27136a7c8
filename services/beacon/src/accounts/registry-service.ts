/**
 * The registry served to peers: `/<network>/registry/1.0.0` over libp2p and `GET /v1/registry`
 * over HTTP, both answering with the same signed page (docs/registry.md). Pages are signed
 * with the fleet's registry key (registry-key.ts). A signature costs ~50 µs and a snapshot
 * page's sort is cached until the accounts change; the last pages signed are kept until then
 * too, so a crowd of peers taking the same snapshot costs one signature per page.
 */
import type { Libp2p } from '@libp2p/interface'
import { serveRequests } from '@pharos/net/request-response.ts'
import type { Ed25519Signer } from '@pharos/protocol/log/index.ts'
import {
  checkRegistryRequest,
  decodeRegistryRequest,
  MAX_REGISTRY_REQUEST_BYTES,
  registryProtocolId,
  signRegistryPage
} from '@pharos/protocol/registry/index.ts'
import type { RegistryPageBody, RegistryRequest } from '@pharos/protocol/registry/index.ts'
import type { Logger } from '../logging/logger.ts'
import type { RegistryJournal } from './registry-journal.ts'

/** Signed pages kept for the current state of the accounts (guess: a large snapshot's pages plus the usual change requests). */
const SIGNED_PAGES_KEPT = 256
/** A request stream must be answered within this (guess: as the sync protocol). */
const REQUEST_TIMEOUT_MS = 15_000
/** Registry streams per connection at once: a peer asks for one page at a time. */
const MAX_INBOUND_REGISTRY_STREAMS = 2

/** A registry request that cannot be answered: its reason, for a 400. */
export class BadRegistryRequestError extends Error {
  override readonly name = 'BadRegistryRequestError'
}

export interface SignedRegistryPage {
  page: RegistryPageBody
  /** The signed statement, canonical dag-cbor. */
  statement: Uint8Array
  /** The registry key's peer ID. */
  signer: string
}

export class RegistryService {
  private readonly journal: RegistryJournal
  private readonly signer: Ed25519Signer
  private readonly network: string
  private readonly cache = new Map<string, { seq: number, signed: SignedRegistryPage }>()

  constructor (journal: RegistryJournal, signer: Ed25519Signer, network: string) {
    this.journal = journal
    this.signer = signer
    this.network = network
  }

  /** The fleet's registry key, as a peer ID: what peers verify pages against. */
  get signerId (): string {
    return this.signer.peerId
  }

  /** The signed page answering `request`; BadRegistryRequestError says why one cannot be answered. */
  async page (request: RegistryRequest): Promise<SignedRegistryPage> {
    const refused = checkRegistryRequest(request)
    if (refused !== undefined) throw new BadRegistryRequestError(refused)
    const key = `${request.cursor ?? ''}|${request.after ?? ''}|${request.limit}`
    const seq = this.journal.seq
    const cached = this.cache.get(key)
    if (cached !== undefined && cached.seq === seq) return cached.signed
    const page = this.journal.page(request)
    const statement = await signRegistryPage(page, this.signer)
    const signed = { page, statement, signer: this.signer.peerId }
    // Pages of an older state are of no use once the accounts changed.
    if (this.cache.size >= SIGNED_PAGES_KEPT || (cached !== undefined && cached.seq !== seq)) {
      for (const [stored, entry] of this.cache) if (entry.seq !== seq) this.cache.delete(stored)
      if (this.cache.size >= SIGNED_PAGES_KEPT) this.cache.clear()
    }
    this.cache.set(key, { seq, signed })
    return signed
  }

  /** Answers the registry protocol on `node` (one request, one page, per stream). */
  async serve (node: Pick<Libp2p, 'handle'>, log: Logger): Promise<void> {
    await serveRequests(node, registryProtocolId(this.network), async (frame) => {
      const decoded = decodeRegistryRequest(frame)
      if (!decoded.ok) return undefined
      return (await this.page(decoded.value)).statement
    }, {
      maxRequestBytes: MAX_REGISTRY_REQUEST_BYTES,
      timeoutMs: REQUEST_TIMEOUT_MS,
      maxInboundStreams: MAX_INBOUND_REGISTRY_STREAMS,
      onRejected: (connection, err) => { log.debug({ err, peer: connection.remotePeer.toString() }, 'registry request rejected') }
    })
  }

  async unserve (node: Pick<Libp2p, 'unhandle'>): Promise<void> {
    await node.unhandle(registryProtocolId(this.network)).catch(() => {})
  }
}
