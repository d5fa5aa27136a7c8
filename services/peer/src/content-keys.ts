/**
 * Keys of private content, through the beacons' key exchange (`KeyExchangeClient` in
 * services/net): depositing a key under an allow-list this peer signs, and getting one.
 */
import type { KeyExchangeClient } from '@pharos/net/clients/key-exchange-client.ts'
import { compareBytes, KEY_BYTES, keyHashOf, signAllowList } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer } from '@pharos/protocol/log/index.ts'
import type { BeaconSessions } from './beacon-sessions.ts'
import type { AbortOptions } from '@libp2p/interface'

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

export interface ContentKeysComponents {
  signer: Ed25519Signer
  keyClient: Pick<KeyExchangeClient, 'deposit' | 'getKey'>
  sessions: Pick<BeaconSessions, 'withBeacon'>
}

export class ContentKeys {
  private readonly components: ContentKeysComponents

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

  async get (keyHash: Uint8Array, options: AbortOptions): Promise<Uint8Array> {
    const { keyClient, sessions } = this.components
    return await sessions.withBeacon('getkey', options, async (beacon) => await keyClient.getKey(beacon, keyHash, options))
  }
}
