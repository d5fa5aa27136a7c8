/**
 * The asking side of `/<network>/registry/1.0.0` (services/protocol registry.ts): one page
 * of the registry from a beacon, verified before it is returned: signed by the fleet's
 * registry key (`signer`, when the asker knows it), of this network, well formed. A page
 * that fails is a RegistryVerificationError, never a page.
 */
import {
  encodeRegistryRequest,
  MAX_REGISTRY_RESPONSE_BYTES,
  openRegistryPage,
  registryProtocolId
} from '@pharos/protocol/registry/index.ts'
import type { RegistryPage, RegistryRequest } from '@pharos/protocol/registry/index.ts'
import { RegistryVerificationError } from '../errors.ts'
import { request } from '../request-response.ts'
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'

export interface RegistryFetchOptions extends AbortOptions {
  /** The fleet's registry key (a peer ID) the page must be signed by. @default any signer (the caller decides whom to trust) */
  signer?: string
}

export class RegistryClient {
  private readonly node: Pick<Libp2p, 'dialProtocol'>
  private readonly network: string
  private readonly protocol: string
  private readonly timeoutMs: number

  constructor (node: Pick<Libp2p, 'dialProtocol'>, network: string, timeoutMs: number) {
    this.node = node
    this.network = network
    this.protocol = registryProtocolId(network)
    this.timeoutMs = timeoutMs
  }

  /** One verified page from `beacon`. Throws RegistryVerificationError for a page that fails. */
  async fetchPage (beacon: PeerId, asked: RegistryRequest, options: RegistryFetchOptions = {}): Promise<RegistryPage> {
    const bytes = await request(this.node, beacon, this.protocol, encodeRegistryRequest(asked), {
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      timeoutMs: this.timeoutMs,
      maxResponseBytes: MAX_REGISTRY_RESPONSE_BYTES,
      what: 'registry'
    })
    const opened = await openRegistryPage(bytes, { network: this.network, ...(options.signer === undefined ? {} : { signer: options.signer }) })
    if (!opened.ok) throw new RegistryVerificationError(beacon.toString(), opened.code, opened.detail)
    return opened.value
  }
}
