/**
 * The asking side of `/<network>/keyexchange/1.0.0` (DESIGN.md §4, GETKEY): an author
 * deposits a content key with a beacon under a signed allow-list; a reader asks for it. The
 * stream is a direct Noise-encrypted libp2p stream, never gossip.
 */
import {
  compareBytes,
  decodeKeyExchange,
  encodeKeyExchange,
  keyExchangeProtocolId,
  keyHashOf,
  MAX_KEY_EXCHANGE_FRAME_BYTES
} from '@pharos/protocol/log/index.ts'
import type { KeyExchangeMessage } from '@pharos/protocol/log/index.ts'
import { KeyDeniedError, MalformedResponseError, RemoteError } from '../errors.ts'
import { request } from '../request-response.ts'
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'

const equals = (a: Uint8Array, b: Uint8Array): boolean => compareBytes(a, b) === 0

export class KeyExchangeClient {
  private readonly node: Pick<Libp2p, 'dialProtocol'>
  private readonly protocol: string
  private readonly timeoutMs: number

  constructor (node: Pick<Libp2p, 'dialProtocol'>, network: string, timeoutMs: number) {
    this.node = node
    this.protocol = keyExchangeProtocolId(network)
    this.timeoutMs = timeoutMs
  }

  private async request (peer: PeerId, message: KeyExchangeMessage, options: AbortOptions): Promise<KeyExchangeMessage> {
    const bytes = await request(this.node, peer, this.protocol, encodeKeyExchange(message), { ...options, timeoutMs: this.timeoutMs, maxResponseBytes: MAX_KEY_EXCHANGE_FRAME_BYTES, what: `key exchange ${message.t}` })
    const decoded = decodeKeyExchange(bytes)
    if (!decoded.ok) throw new MalformedResponseError(peer.toString(), this.protocol, decoded.detail)
    if (decoded.value.t === 'error') throw new RemoteError(peer.toString(), this.protocol, decoded.value.code, decoded.value.message)
    return decoded.value
  }

  private malformed (peer: PeerId, detail: string): MalformedResponseError {
    return new MalformedResponseError(peer.toString(), this.protocol, detail)
  }

  /** Deposits `key` under `rule` (a signed allow-list); resolves once the beacon confirmed it. */
  async deposit (peer: PeerId, key: Uint8Array, rule: Uint8Array, options: AbortOptions = {}): Promise<void> {
    const keyHash = await keyHashOf(key)
    const response = await this.request(peer, { t: 'deposit', key, rule }, options)
    if (response.t !== 'deposited') throw this.malformed(peer, `a ${response.t} frame answered a deposit`)
    if (!equals(response.keyHash, keyHash)) throw this.malformed(peer, 'deposited names another key hash')
  }

  /**
   * The key whose SHA-256 is `keyHash`, from any holder (a beacon, the author, an allowed
   * peer). KeyDeniedError with the holder's reason and code if refused (`not-entitled` when an
   * older holder gives no code), or with `key-hash-mismatch` if what it sent does not hash to
   * `keyHash`: such a key is never returned.
   */
  async getKey (peer: PeerId, keyHash: Uint8Array, options: AbortOptions = {}): Promise<Uint8Array> {
    const response = await this.request(peer, { t: 'getkey', keyHash }, options)
    if (response.t === 'denied') throw new KeyDeniedError(peer.toString(), response.reason, response.code ?? 'not-entitled')
    if (response.t !== 'key') throw this.malformed(peer, `a ${response.t} frame answered a getkey`)
    if (!equals(response.keyHash, keyHash) || !equals(await keyHashOf(response.key), keyHash)) {
      throw new KeyDeniedError(peer.toString(), 'the key it sent does not hash to the key hash asked for', 'key-hash-mismatch')
    }
    return response.key
  }
}
