/**
 * The entries a peer holds: its own log and what it fetched of the authors it follows.
 * Entry blocks live in the peer's blockstore (so Bitswap and the sync responder serve
 * them); this is their index, rebuilt lazily from the blockstore: an entry found there is
 * decoded and its signature checked again before it is believed.
 */
import type { CID } from 'multiformats/cid'
import { compareHeads, decodeEntry, verifyEntry } from '@pharos/protocol/log/index.ts'
import type { EntryBlock, KnownHead } from '@pharos/protocol/log/index.ts'
import type { AbortOptions } from '@libp2p/interface'
import { collectBytes } from './bytes.ts'

/** What the log needs of a blockstore. Reads must not go to the network (Helia: `offline`). */
export interface LogBlockstore {
  has: (cid: CID, options?: AbortOptions) => boolean | Promise<boolean>
  get: (cid: CID, options?: AbortOptions & { offline?: boolean }) => Generator<Uint8Array> | AsyncGenerator<Uint8Array>
  put: (cid: CID, bytes: Uint8Array, options?: AbortOptions) => CID | Promise<CID>
}

interface AuthorState {
  head: EntryBlock
  /** Entries held for the author. */
  entries: number
}

export class LocalLog {
  private readonly blockstore: LogBlockstore
  private readonly entries = new Map<string, EntryBlock>()
  private readonly authors = new Map<string, AuthorState>()

  constructor (blockstore: LogBlockstore) {
    this.blockstore = blockstore
  }

  /** Stores a verified entry block and indexes it. Returns false if it was already held. */
  async add (block: EntryBlock, options: AbortOptions = {}): Promise<boolean> {
    const key = block.cid.toString()
    if (this.entries.has(key)) return false
    await this.blockstore.put(block.cid, block.bytes, options)
    this.index(block)
    return true
  }

  private index (block: EntryBlock): void {
    const key = block.cid.toString()
    if (this.entries.has(key)) return
    this.entries.set(key, block)
    const state = this.authors.get(block.entry.author)
    if (state === undefined) {
      this.authors.set(block.entry.author, { head: block, entries: 1 })
      return
    }
    state.entries++
    if (compareHeads({ seq: block.entry.seq, cid: block.cid }, { seq: state.head.entry.seq, cid: state.head.cid }) < 0) state.head = block
  }

  /**
   * The entry with this CID if the peer holds it: from the index, or from the blockstore
   * (decoded and verified, then indexed). Undefined for a block that is absent or is not a
   * valid entry.
   */
  async get (cid: CID, options: AbortOptions = {}): Promise<EntryBlock | undefined> {
    const known = this.entries.get(cid.toString())
    if (known !== undefined) return known
    if (!await this.blockstore.has(cid, options)) return undefined
    let bytes: Uint8Array
    try {
      bytes = await collectBytes(this.blockstore.get(cid, { ...options, offline: true }))
    } catch {
      return undefined
    }
    const decoded = await decodeEntry(bytes)
    if (!decoded.ok || !decoded.value.cid.equals(cid)) return undefined
    if (!(await verifyEntry(decoded.value.entry)).ok) return undefined
    this.index(decoded.value)
    return decoded.value
  }

  /** Whether the blockstore holds a block (any block, not only entries). */
  async hasBlock (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    return await this.blockstore.has(cid, options)
  }

  /** The best head among the author's held entries (highest seq, then lowest CID). */
  head (author: string): EntryBlock | undefined {
    return this.authors.get(author)?.head
  }

  /** The heads held of `authors`, as a sync `heads` request carries them (`known`). */
  knownHeads (authors: readonly string[]): KnownHead[] {
    return authors.flatMap((author) => {
      const head = this.head(author)
      return head === undefined ? [] : [{ author, cid: head.cid, seq: head.entry.seq }]
    })
  }

  /** How many of the author's entries are held. */
  count (author: string): number {
    return this.authors.get(author)?.entries ?? 0
  }
}
