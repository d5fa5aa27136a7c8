import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { varint } from 'multiformats'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { schema } from '../config/schema.ts'
import type { ConfigKey } from '../config/schema.ts'
import { linksOf, MalformedBlockError, TooManyLinksError } from './dag-links.ts'
import type { PgBlockstore } from './pg-blockstore.ts'

/** Trustless gateway `dag-scope`: the root block, the entity it starts (a whole file), or the whole DAG. */
export type DagScope = 'block' | 'entity' | 'all'

/** The CAR media type this stream produces: CARv1, depth-first order, no duplicate blocks. */
export const CAR_CONTENT_TYPE = 'application/vnd.ipld.car; version=1; order=dfs; dups=n'

/**
 * What one CAR response may cost. Each is named by the config key that sets it in a
 * `CarLimitError`, so the log line and `pharos_limit_blocked_total{limit}` name the key to raise.
 */
export interface CarLimits {
  /**
   * Blocks the CAR may carry, and also how many CIDs the walk may hold at once (blocks sent
   * plus links waiting to be walked): so the walk's memory is bounded by this, whatever the
   * DAG's shape.
   */
  maxBlocks: number
  /** Bytes of distinct blocks the CAR may carry. */
  maxBytes: number
  /** Deepest link path from the root (root is 0), measured along the depth-first path the CAR follows. */
  maxDepth: number
  /** Links one block may hold. */
  maxLinksPerBlock: number
}

/** The config keys of the CAR limits (and of the time limit the HTTP route applies). */
export type CarLimitKey = Extract<ConfigKey, 'gatewayCarMaxBlocks' | 'gatewayCarMaxBytes' | 'gatewayCarMaxDepth' | 'gatewayCarTimeoutMs' | 'dagMaxLinksPerBlock'>

/** A CAR stream crossed one of its limits: it ends there, and the client never sees a CAR that looks complete. */
export class CarLimitError extends Error {
  override readonly name = 'CarLimitError'
  /** The config key (schema name); the message starts with its env variable. */
  readonly key: CarLimitKey
  readonly limit: number

  constructor (key: CarLimitKey, limit: number, what: string) {
    super(`${schema[key].env}: ${what} (limit ${limit})`)
    this.key = key
    this.limit = limit
  }
}

/** How far a walk got: for logs, and for tests that check its memory stayed bounded. */
export interface CarProgress {
  /** Stored blocks sent (identity CIDs carry their bytes and are not sent). */
  blocks: number
  bytes: number
  /** CIDs the walk holds now: every one sent or met (to send each once), plus links waiting; 0 once the stream has ended. */
  held: number
  /** The largest `held` was during the walk. */
  peakHeld: number
}

function withLengthPrefix (...parts: Uint8Array[]): Uint8Array {
  const length = parts.reduce((sum, part) => sum + part.byteLength, 0)
  const out = new Uint8Array(varint.encodingLength(length) + length)
  varint.encodeTo(length, out)
  let offset = varint.encodingLength(length)
  for (const part of parts) {
    out.set(part, offset)
    offset += part.byteLength
  }
  return out
}

/** A CID's bytes as a one-byte string: a compact Set key (~36 characters for a sha2-256 CIDv1). */
function keyOf (cid: CID): string {
  return Buffer.from(cid.bytes.buffer, cid.bytes.byteOffset, cid.bytes.byteLength).toString('latin1')
}

function isInline (cid: CID): boolean {
  return cid.multihash.code === identity.code
}

const SCOPES: readonly DagScope[] = ['block', 'entity', 'all']

/**
 * The links waiting to be walked, as one stack of packed CID bytes (~40 bytes a link,
 * where a CID object costs ~600): the top is the next link in depth-first order.
 */
class LinkStack {
  private bytes = new Uint8Array(16 * 1024)
  /** Where each entry's bytes end in `bytes`. */
  private ends = new Uint32Array(256)
  private depths = new Uint32Array(256)
  private scopes = new Uint8Array(256)
  private count = 0

  get size (): number {
    return this.count
  }

  push (cid: CID, depth: number, scope: DagScope): void {
    const start = this.count === 0 ? 0 : this.ends[this.count - 1] ?? 0
    const end = start + cid.bytes.byteLength
    if (end > this.bytes.length) this.bytes = grown(this.bytes, end)
    if (this.count === this.ends.length) {
      this.ends = grown(this.ends, this.count + 1)
      this.depths = grown(this.depths, this.count + 1)
      this.scopes = grown(this.scopes, this.count + 1)
    }
    this.bytes.set(cid.bytes, start)
    this.ends[this.count] = end
    this.depths[this.count] = depth
    this.scopes[this.count] = SCOPES.indexOf(scope)
    this.count++
  }

  pop (): { cid: CID, depth: number, scope: DagScope } | undefined {
    if (this.count === 0) return undefined
    this.count--
    const start = this.count === 0 ? 0 : this.ends[this.count - 1] ?? 0
    return {
      cid: CID.decode(this.bytes.slice(start, this.ends[this.count])),
      depth: this.depths[this.count] ?? 0,
      scope: SCOPES[this.scopes[this.count] ?? 0] ?? 'block'
    }
  }
}

/** A copy of `array` with room for at least `needed` items (doubling, so pushes stay amortised O(1)). */
function grown<T extends Uint8Array | Uint32Array> (array: T, needed: number): T {
  const larger = new (array.constructor as new (length: number) => T)(Math.max(needed, array.length * 2))
  larger.set(array)
  return larger
}

/**
 * The links to follow from a block in a given scope, and the scope its children are walked
 * in. `entity`: a UnixFS file brings all its blocks; a HAMT-sharded directory brings its
 * shard blocks (not the entries); anything else is the block alone.
 */
function linksIn (cid: CID, bytes: Uint8Array, scope: DagScope, maxLinks: number): { links: CID[], scope: DagScope } {
  if (scope === 'block') return { links: [], scope }
  if (scope === 'all') return { links: linksOf(cid, bytes, maxLinks), scope }
  if (cid.code !== dagPb.code) return { links: [], scope }
  let node: dagPb.PBNode
  try {
    node = dagPb.decode(bytes)
  } catch (err) {
    throw new MalformedBlockError(cid, err instanceof Error ? err.message : String(err))
  }
  if (node.Links.length > maxLinks) throw new TooManyLinksError(cid, maxLinks)
  // dag-pb's decoder hands out CIDs that view the block's buffer: copy them, so a waiting
  // link does not keep its whole block in memory.
  const detached = (links: dagPb.PBLink[]): CID[] => links.map((link) => CID.decode(link.Hash.bytes.slice()))
  let unixfs: UnixFS
  try {
    unixfs = UnixFS.unmarshal(node.Data ?? new Uint8Array(0))
  } catch {
    return { links: [], scope } // dag-pb that is not UnixFS: the block is the entity
  }
  if (unixfs.type === 'file' || unixfs.type === 'raw') return { links: detached(node.Links), scope: 'all' }
  if (unixfs.type === 'hamt-sharded-directory' && unixfs.fanout !== undefined) {
    // Shard links are named by their bucket alone (two hex digits at fanout 256); entry links
    // carry the bucket and then the entry's name.
    const bucketChars = (unixfs.fanout - 1n).toString(16).length
    return { links: detached(node.Links.filter((link) => link.Name?.length === bucketChars)), scope: 'entity' }
  }
  return { links: [], scope }
}

/**
 * A CARv1 of the DAG under `root` within `scope`, read from the Postgres blockstore only
 * (never the network), each block verified as it is read, within `limits`.
 *
 * The order is depth-first pre-order with each block at its first occurrence, which is what
 * a client verifying `order=dfs` as it reads expects. A block's links go on one stack,
 * each link once per block and never one already sent (a link also waiting lower down the
 * stack is pushed again, so it is sent here, at its first depth-first occurrence, and
 * skipped when the lower entry is popped). So the walk holds the CIDs sent plus the links
 * waiting, and that is capped by `maxBlocks`: a block that repeats one link 26,000 times
 * costs one entry, and a DAG whose blocks each bring many new links is cut as soon as
 * their sum passes the cap, before they are read.
 *
 * Call `begin` with the root's bytes (read before any response header, so a root over a
 * limit can still be refused with a status), then iterate `stream`. A limit crossed, or a
 * block that is missing, corrupt or malformed, ends the stream with an error, so a client
 * never receives a CAR that looks complete but is not, and never receives bad bytes.
 */
export class CarWalk {
  readonly root: CID
  private readonly scope: DagScope
  private readonly limits: CarLimits
  /** Every CID sent or met (identity CIDs too), so each is sent once. */
  private readonly sent = new Set<string>()
  private waiting = new LinkStack()
  private rootBytes: Uint8Array | undefined
  private readonly counts = { blocks: 0, bytes: 0, peakHeld: 0 }

  constructor (root: CID, scope: DagScope, limits: CarLimits) {
    this.root = root
    this.scope = scope
    this.limits = limits
  }

  get progress (): CarProgress {
    return { blocks: this.counts.blocks, bytes: this.counts.bytes, held: this.sent.size + this.waiting.size, peakHeld: this.counts.peakHeld }
  }

  /**
   * Takes the root's verified bytes and checks it against the limits.
   * @throws CarLimitError, MalformedBlockError or UnsupportedCodecError for a root that cannot be served
   */
  begin (rootBytes: Uint8Array): void {
    this.sent.add(keyOf(this.root))
    this.visit(this.root, rootBytes, 0, this.scope)
    this.rootBytes = rootBytes
  }

  /**
   * The CAR's bytes: header, root, then every block depth-first. Reads storage one block at
   * a time as the consumer pulls, and stops reading as soon as `signal` aborts. However it
   * ends (done, a limit, an error, or the consumer stopping), what the walk held is let go.
   */
  async * stream (blockstore: Pick<PgBlockstore, 'getBytes'>, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const rootBytes = this.rootBytes
    if (rootBytes === undefined) throw new Error('CarWalk.begin must be called with the root before stream')
    this.rootBytes = undefined
    try {
      yield withLengthPrefix(dagCbor.encode({ version: 1, roots: [this.root] }))
      // Identity blocks carry their bytes in the CID; the client has them already.
      if (!isInline(this.root)) yield withLengthPrefix(this.root.bytes, rootBytes)
      for (let next = this.waiting.pop(); next !== undefined; next = this.waiting.pop()) {
        const { cid, depth, scope } = next
        const key = keyOf(cid)
        if (this.sent.has(key)) continue // sent from a deeper block since it was pushed
        this.sent.add(key)
        if (isInline(cid)) {
          this.visit(cid, cid.multihash.digest, depth, scope)
          continue
        }
        signal.throwIfAborted()
        const bytes = await blockstore.getBytes(cid, { signal })
        signal.throwIfAborted()
        this.visit(cid, bytes, depth, scope)
        yield withLengthPrefix(cid.bytes, bytes)
      }
    } finally {
      this.sent.clear()
      this.waiting = new LinkStack()
    }
  }

  /** Counts one block against the limits and pushes its links still to walk. */
  private visit (cid: CID, bytes: Uint8Array, depth: number, scope: DagScope): void {
    const { limits, counts } = this
    if (!isInline(cid)) {
      counts.blocks++
      counts.bytes += bytes.byteLength
      if (counts.bytes > limits.maxBytes) throw new CarLimitError('gatewayCarMaxBytes', limits.maxBytes, `the DAG is larger than ${limits.maxBytes} bytes`)
    }
    let next: { links: CID[], scope: DagScope }
    try {
      next = linksIn(cid, bytes, scope, limits.maxLinksPerBlock)
    } catch (err) {
      if (err instanceof TooManyLinksError) throw new CarLimitError('dagMaxLinksPerBlock', limits.maxLinksPerBlock, `block ${cid.toString()} links more than ${limits.maxLinksPerBlock} blocks`)
      throw err
    }
    if (next.links.length === 0) return
    if (depth + 1 > limits.maxDepth) throw new CarLimitError('gatewayCarMaxDepth', limits.maxDepth, `the DAG is deeper than ${limits.maxDepth} links`)
    const links: CID[] = []
    const inBlock = new Set<string>()
    for (const link of next.links) {
      const key = keyOf(link)
      if (this.sent.has(key) || inBlock.has(key)) continue
      inBlock.add(key)
      links.push(link)
    }
    const held = this.sent.size + this.waiting.size + links.length
    if (held > limits.maxBlocks) throw new CarLimitError('gatewayCarMaxBlocks', limits.maxBlocks, `the DAG has more than ${limits.maxBlocks} blocks`)
    counts.peakHeld = Math.max(counts.peakHeld, held)
    // Last link first, so the first link is on top: walked first, in link order.
    for (let i = links.length - 1; i >= 0; i--) this.waiting.push(links[i] as CID, depth + 1, next.scope)
  }
}
