/**
 * Verifying an author's log walked from a head down to genesis (DESIGN.md §4): every block
 * decodes as an entry, is signed by the log's author, is the entry the one above it links to
 * (`prev`), and sits one seq below it; the walk ends at seq 0 with no prev. The first failure
 * throws a LogVerificationError naming the entry and the reason. Nothing is stored before it
 * passes.
 */
import type { CID } from 'multiformats/cid'
import { cborCid, decodeEntry, verifyEntry } from '@pharos/protocol/log/index.ts'
import type { EntryBlock } from '@pharos/protocol/log/index.ts'
import { LogVerificationError, MissingEntryError } from './errors.ts'
import type { AbortOptions } from '@libp2p/interface'

/** The entry a walk expects next: the CID the entry above links to, and one seq less. */
export interface ExpectedEntry {
  cid: CID
  /** Unknown only for a head nobody announced a seq for. */
  seq?: number
}

/** Checks one block against what the walk expected; returns the decoded, verified entry. */
export async function checkLogEntry (author: string, expected: ExpectedEntry, bytes: Uint8Array): Promise<EntryBlock> {
  const name = expected.cid.toString()
  const decoded = await decodeEntry(bytes)
  if (!decoded.ok) throw new LogVerificationError(author, name, expected.seq, 'malformed', `${decoded.code}: ${decoded.detail}`)
  const block = decoded.value
  const { entry } = block
  if (!block.cid.equals(expected.cid)) {
    throw new LogVerificationError(author, name, expected.seq, 'broken-chain', `got entry ${block.cid.toString()} (seq ${entry.seq}) where the log links to ${name}`)
  }
  if (entry.author !== author) throw new LogVerificationError(author, name, entry.seq, 'wrong-author', `signed by ${entry.author}`)
  const verified = await verifyEntry(entry)
  if (!verified.ok) throw new LogVerificationError(author, name, entry.seq, 'bad-signature', verified.code)
  if (expected.seq !== undefined && entry.seq !== expected.seq) {
    throw new LogVerificationError(author, name, entry.seq, 'bad-seq', `seq ${entry.seq} where ${expected.seq} was expected`)
  }
  return block
}

/** What the walk reads entries from. */
export interface LogSource {
  /** A held (already verified) entry, or undefined. Must not touch the network. */
  local: (cid: CID, options: AbortOptions) => Promise<EntryBlock | undefined>
  /** Entry blocks walking back from `from` (inclusive), from whoever holds them; [] if nobody does. */
  remote: (from: CID, options: AbortOptions) => Promise<Uint8Array[]>
}

export interface WalkOptions extends AbortOptions {
  author: string
  head: ExpectedEntry
  source: LogSource
  /**
   * `genesis`: the whole log, held entries included (re-verified from their bytes).
   * `held`: only what is missing, stopping at the first entry already held.
   */
  until: 'genesis' | 'held'
  /** Called with each entry fetched from a remote once it passed verification, before the walk goes on. */
  onVerified?: (block: EntryBlock) => Promise<void>
  /** Called with every entry walked once it passed verification, held or fetched (for progress). */
  onEntry?: (block: EntryBlock) => void
}

/** Walks an author's log down from `head`; returns the entries walked, head first. */
export async function walkLog (options: WalkOptions): Promise<EntryBlock[]> {
  const { author, source, until, onVerified, onEntry, signal } = options
  const chain: EntryBlock[] = []
  let pending: Uint8Array[] = []
  let expected: ExpectedEntry | undefined = options.head
  while (expected !== undefined) {
    signal?.throwIfAborted()
    const held = await source.local(expected.cid, { signal })
    let bytes: Uint8Array | undefined
    if (held !== undefined) {
      if (until === 'held') return chain
      bytes = held.bytes
      pending = []
    } else {
      if (pending.length === 0) pending = await source.remote(expected.cid, { signal })
      bytes = pending.shift()
      if (bytes === undefined) throw new MissingEntryError(author, expected.cid.toString(), 'no beacon or peer asked holds it')
    }
    const block = await checkLogEntry(author, expected, bytes)
    if (held === undefined) await onVerified?.(block)
    onEntry?.(block)
    chain.push(block)
    expected = block.entry.prev === null ? undefined : { cid: block.entry.prev, seq: block.entry.seq - 1 }
  }
  return chain
}

/**
 * Verifies a whole log given as entry blocks, head first, down to genesis. `head` is the
 * head as announced (its seq is checked too); by default the first block is the head.
 */
export async function verifyLog (author: string, blocks: readonly Uint8Array[], head?: ExpectedEntry): Promise<EntryBlock[]> {
  const first = blocks[0]
  if (first === undefined) return []
  let index = 0
  const chain = await walkLog({
    author,
    head: head ?? { cid: await cborCid(first) },
    until: 'genesis',
    source: {
      local: async () => undefined,
      remote: async () => index < blocks.length ? [blocks[index++] ?? new Uint8Array()] : []
    }
  })
  if (index < blocks.length) {
    const extra = await cborCid(blocks[index] ?? new Uint8Array())
    throw new LogVerificationError(author, extra.toString(), undefined, 'broken-chain', 'the log goes on below its genesis entry')
  }
  return chain
}
