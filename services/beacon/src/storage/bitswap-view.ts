import { NotFoundError } from 'interface-store'
import { BlockHashMismatchError } from './pg-blockstore.ts'
import type { PgBlockstore } from './pg-blockstore.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Blockstore, InputPair, Pair } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

/**
 * The blockstore Helia (and so Bitswap) is given: the Postgres blockstore, except that a
 * block whose stored bytes failed verification is reported missing.
 *
 * - Bitswap's ledger answers DONT_HAVE for a missing block and carries on, but any other
 *   error aborts the whole batch it was sending to that peer.
 * - Helia fetches a block only when `has` says it is missing, so a known-corrupt block is
 *   fetched from peers again and the verified bytes overwrite the bad row.
 */
export class BitswapBlockstoreView implements Blockstore {
  private readonly store: PgBlockstore

  constructor (store: PgBlockstore) {
    this.store = store
  }

  async has (cid: CID, options?: AbortOptions): Promise<boolean> {
    if (this.store.isKnownCorrupt(cid)) return false
    return await this.store.has(cid, options)
  }

  /** The size of a stored block, or `undefined` when `has` would say it is missing. */
  async sizeOf (cid: CID, options?: AbortOptions): Promise<number | undefined> {
    if (this.store.isKnownCorrupt(cid)) return undefined
    return await this.store.sizeOf(cid, options)
  }

  async * get (cid: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
    try {
      yield await this.store.getBytes(cid, options)
    } catch (err) {
      if (err instanceof BlockHashMismatchError) throw new NotFoundError(err.message)
      throw err
    }
  }

  async * getMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<Pair> {
    for await (const cid of source) yield { cid, bytes: this.get(cid, options) }
  }

  async put (cid: CID, bytes: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options?: AbortOptions): Promise<CID> {
    return await this.store.put(cid, bytes, options)
  }

  putMany (source: Iterable<InputPair> | AsyncIterable<InputPair>, options?: AbortOptions): AsyncGenerator<CID> {
    return this.store.putMany(source, options)
  }

  getAll (options?: AbortOptions): AsyncGenerator<Pair> {
    return this.store.getAll(options)
  }

  async delete (cid: CID, options?: AbortOptions): Promise<void> {
    await this.store.delete(cid, options)
  }

  deleteMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<CID> {
    return this.store.deleteMany(source, options)
  }
}
