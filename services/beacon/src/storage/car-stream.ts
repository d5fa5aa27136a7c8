import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { varint } from 'multiformats'
import * as raw from 'multiformats/codecs/raw'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { schema } from '../config/schema.ts'
import type { ConfigKey } from '../config/schema.ts'
import { linksOf, MalformedBlockError, TooManyLinksError } from './dag-links.ts'
import type { DagBlock } from './dag-path.ts'
import type { PgBlockstore } from './pg-blockstore.ts'

/** Trustless gateway `dag-scope`: the root block, the entity it starts (a whole file), or the whole DAG. */
export type DagScope = 'block' | 'entity' | 'all'

/**
 * Trustless gateway `entity-bytes=from:to`, as asked: inclusive offsets, a negative one
 * counting from the end of the file (-1 is its last byte), `to` '*' for the end of the file.
 */
export interface EntityBytes {
  from: number
  to: number | '*'
}

/** Inclusive byte offsets within one UnixFS file node. */
interface ByteRange {
  from: number
  to: number
}

/**
 * `entity-bytes` asked for bytes that all lie past the end of the file: the spec's 400, said
 * before any header (the file's size is in its root block).
 */
export class EntityBytesOutOfRangeError extends Error {
  override readonly name = 'EntityBytesOutOfRangeError'
}

/** A scope as the walk carries it: `range` is a UnixFS file node limited to a byte range. */
type WalkScope = DagScope | 'range'

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

/**
 * Blocks from this size on leave as a chunk of their own after their section's header (the
 * length and the CID), not copied into one buffer with it: a CAR of 1 MiB blocks to a few
 * clients at once otherwise allocates a second megabyte per block and stream, garbage that
 * counts in the worker's RSS until a GC (bench/pinning). Smaller blocks are copied, where one
 * chunk costs less than two (guess: the copy of 16 KiB is a few µs).
 */
export const UNCOPIED_BLOCK_BYTES = 16 * 1024

/** One CARv1 section, a block under its CID: one chunk, or the header and the block's own bytes. */
function * section (cid: CID, bytes: Uint8Array): Generator<Uint8Array> {
  if (bytes.byteLength < UNCOPIED_BLOCK_BYTES) {
    yield withLengthPrefix(cid.bytes, bytes)
    return
  }
  const length = cid.bytes.byteLength + bytes.byteLength
  const header = new Uint8Array(varint.encodingLength(length) + cid.bytes.byteLength)
  varint.encodeTo(length, header)
  header.set(cid.bytes, varint.encodingLength(length))
  yield header
  yield bytes
}

/** A CID's bytes as a one-byte string: a compact Set key (~36 characters for a sha2-256 CIDv1). */
function keyOf (cid: CID): string {
  return Buffer.from(cid.bytes.buffer, cid.bytes.byteOffset, cid.bytes.byteLength).toString('latin1')
}

function isInline (cid: CID): boolean {
  return cid.multihash.code === identity.code
}

const SCOPES: readonly WalkScope[] = ['block', 'entity', 'all', 'range']

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
  /** A `range` entry's inclusive offsets, at 2i and 2i + 1. */
  private ranges = new Float64Array(512)
  private count = 0

  get size (): number {
    return this.count
  }

  push (cid: CID, depth: number, scope: WalkScope, range?: ByteRange): void {
    const start = this.count === 0 ? 0 : this.ends[this.count - 1] ?? 0
    const end = start + cid.bytes.byteLength
    if (end > this.bytes.length) this.bytes = grown(this.bytes, end)
    if (this.count === this.ends.length) {
      this.ends = grown(this.ends, this.count + 1)
      this.depths = grown(this.depths, this.count + 1)
      this.scopes = grown(this.scopes, this.count + 1)
      this.ranges = grown(this.ranges, 2 * (this.count + 1))
    }
    this.bytes.set(cid.bytes, start)
    this.ends[this.count] = end
    this.depths[this.count] = depth
    this.scopes[this.count] = SCOPES.indexOf(scope)
    this.ranges[2 * this.count] = range?.from ?? 0
    this.ranges[2 * this.count + 1] = range?.to ?? 0
    this.count++
  }

  pop (): { cid: CID, depth: number, scope: WalkScope, range: ByteRange } | undefined {
    if (this.count === 0) return undefined
    this.count--
    const start = this.count === 0 ? 0 : this.ends[this.count - 1] ?? 0
    return {
      cid: CID.decode(this.bytes.slice(start, this.ends[this.count])),
      depth: this.depths[this.count] ?? 0,
      scope: SCOPES[this.scopes[this.count] ?? 0] ?? 'block',
      range: { from: this.ranges[2 * this.count] ?? 0, to: this.ranges[2 * this.count + 1] ?? 0 }
    }
  }
}

/** A copy of `array` with room for at least `needed` items (doubling, so pushes stay amortised O(1)). */
function grown<T extends Uint8Array | Uint32Array | Float64Array> (array: T, needed: number): T {
  const larger = new (array.constructor as new (length: number) => T)(Math.max(needed, array.length * 2))
  larger.set(array)
  return larger
}

/** The links to follow from one block, the scope each is walked in, and (scope `range`) each one's byte range. */
interface NextLinks {
  links: CID[]
  scope: WalkScope
  ranges?: ByteRange[]
  /** Scope `range`: whether the block's range covered all its bytes, so every link was taken. */
  whole?: boolean
}

function decodePb (cid: CID, bytes: Uint8Array, maxLinks: number): dagPb.PBNode {
  let node: dagPb.PBNode
  try {
    node = dagPb.decode(bytes)
  } catch (err) {
    throw new MalformedBlockError(cid, err instanceof Error ? err.message : String(err))
  }
  if (node.Links.length > maxLinks) throw new TooManyLinksError(cid, maxLinks)
  return node
}

function unixfsOf (node: dagPb.PBNode): UnixFS | undefined {
  try {
    return UnixFS.unmarshal(node.Data ?? new Uint8Array(0))
  } catch {
    return undefined // dag-pb that is not UnixFS
  }
}

// dag-pb's decoder hands out CIDs that view the block's buffer: copy them, so a waiting
// link does not keep its whole block in memory.
const detached = (links: dagPb.PBLink[]): CID[] => links.map((link) => CID.decode(link.Hash.bytes.slice()))

/**
 * The size in bytes of the file a block starts, or undefined when it is no file (a
 * directory, dag-cbor…): `entity-bytes` applies to files only and is ignored otherwise.
 */
function fileSize (cid: CID, bytes: Uint8Array): number | undefined {
  if (cid.code === raw.code) return bytes.byteLength
  if (cid.code !== dagPb.code) return undefined
  let node: dagPb.PBNode
  try {
    node = dagPb.decode(bytes)
  } catch (err) {
    throw new MalformedBlockError(cid, err instanceof Error ? err.message : String(err))
  }
  const unixfs = unixfsOf(node)
  return unixfs?.type === 'file' || unixfs?.type === 'raw' ? Number(unixfs.fileSize()) : undefined
}

/**
 * `entity-bytes` against a file of `size` bytes, as the trustless gateway spec reads it:
 * negative offsets count from the end (a `from` before the start is the start), `to` past
 * the end is the end. Undefined for a zero-length range (the spec: then it is
 * `dag-scope=block`).
 * @throws EntityBytesOutOfRangeError when every byte asked for is past the end
 */
function resolveEntityBytes (asked: EntityBytes, size: number): ByteRange | undefined {
  if (size === 0) return undefined
  const from = asked.from < 0 ? Math.max(size + asked.from, 0) : asked.from
  if (from >= size) throw new EntityBytesOutOfRangeError(`entity-bytes=${asked.from}:${asked.to} starts past the end of the ${size}-byte file`)
  const to = asked.to === '*' ? size - 1 : asked.to < 0 ? size + asked.to : Math.min(asked.to, size - 1)
  return to < from ? undefined : { from, to }
}

/**
 * The links of a UnixFS file node that hold bytes in `range`, each with its part of the
 * range: the node's own data comes first, then each child's `blockSizes[i]` bytes (the
 * layout ipfs-unixfs-exporter reads).
 */
function linksInRange (cid: CID, bytes: Uint8Array, range: ByteRange, maxLinks: number): NextLinks {
  if (cid.code !== dagPb.code) return { links: [], scope: 'range', whole: true } // a raw leaf
  const node = decodePb(cid, bytes, maxLinks)
  const unixfs = unixfsOf(node)
  if (unixfs === undefined || (unixfs.type !== 'file' && unixfs.type !== 'raw')) return { links: [], scope: 'range', whole: true }
  if (unixfs.blockSizes.length !== node.Links.length) throw new MalformedBlockError(cid, `a UnixFS file with ${node.Links.length} links and ${unixfs.blockSizes.length} block sizes`)
  const links: dagPb.PBLink[] = []
  const ranges: ByteRange[] = []
  let offset = unixfs.data?.byteLength ?? 0
  for (let i = 0; i < node.Links.length && offset <= range.to; i++) {
    const size = Number(unixfs.blockSizes[i] ?? 0n)
    if (size > 0 && offset + size > range.from) {
      links.push(node.Links[i] as dagPb.PBLink)
      ranges.push({ from: Math.max(range.from - offset, 0), to: Math.min(range.to - offset, size - 1) })
    }
    offset += size
  }
  return { links: detached(links), scope: 'range', ranges, whole: range.from === 0 && range.to >= Number(unixfs.fileSize()) - 1 }
}

/**
 * The links to follow from a block in a given scope, and the scope its children are walked
 * in. `entity`: a UnixFS file brings all its blocks; a HAMT-sharded directory brings its
 * shard blocks (not the entries); anything else is the block alone. `range`: the blocks of
 * a UnixFS file that hold the range.
 */
function linksIn (cid: CID, bytes: Uint8Array, scope: WalkScope, range: ByteRange, maxLinks: number): NextLinks {
  if (scope === 'block') return { links: [], scope }
  if (scope === 'all') return { links: linksOf(cid, bytes, maxLinks), scope }
  if (scope === 'range') return linksInRange(cid, bytes, range, maxLinks)
  if (cid.code !== dagPb.code) return { links: [], scope }
  const node = decodePb(cid, bytes, maxLinks)
  const unixfs = unixfsOf(node)
  if (unixfs === undefined) return { links: [], scope } // dag-pb that is not UnixFS: the block is the entity
  if (unixfs.type === 'file' || unixfs.type === 'raw') return { links: detached(node.Links), scope: 'all' }
  if (unixfs.type === 'hamt-sharded-directory' && unixfs.fanout !== undefined) {
    // Shard links are named by their bucket alone (two hex digits at fanout 256); entry links
    // carry the bucket and then the entry's name.
    const bucketChars = (unixfs.fanout - 1n).toString(16).length
    return { links: detached(node.Links.filter((link) => link.Name?.length === bucketChars)), scope: 'entity' }
  }
  return { links: [], scope }
}

/** What a CAR walk starts from, beyond its root and scope. */
export interface CarWalkInit {
  /**
   * A content path resolved under the root (`/ipfs/{root}/a/b`): its blocks are sent first,
   * in the order read, and the walk starts at its terminal.
   */
  path?: { blocks: readonly DagBlock[], terminal: DagBlock }
  /** Limits a UnixFS file at the start to the blocks holding these bytes (ignored for anything but a file). */
  entityBytes?: EntityBytes
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
 * With a content path (`init.path`), the blocks read to resolve it come first, in the order
 * read (the root, each HAMT shard crossed, each segment's block), and the scope applies from
 * the path's terminal: what the trustless gateway spec asks so a client can verify the path.
 * With `entity-bytes` on a UnixFS file, only the blocks holding that byte range follow.
 *
 * Call `begin` with the bytes of the block the walk starts at (read before any response
 * header, so a start over a limit can still be refused with a status), then iterate `stream`. A limit crossed, or a
 * block that is missing, corrupt or malformed, ends the stream with an error, so a client
 * never receives a CAR that looks complete but is not, and never receives bad bytes.
 */
export class CarWalk {
  readonly root: CID
  private readonly scope: DagScope
  private readonly limits: CarLimits
  private readonly init: CarWalkInit
  /** Where the walk starts: the root, or the terminal of a path under it. */
  private readonly start: CID
  /** Every CID sent or met (identity CIDs too), so each is sent once. */
  private readonly sent = new Set<string>()
  /**
   * Scope `range`: the file nodes walked for a part of their bytes only, with the parts. A
   * node shared by the file (runs of equal bytes give equal subtrees) can be met again for
   * another part; it is then read again for the links that part needs, but never sent
   * again. Only the nodes on the range's two edges are partly walked, so this holds at most
   * about two per level.
   */
  private readonly partly = new Map<string, ByteRange[]>()
  private waiting = new LinkStack()
  private startBytes: Uint8Array | undefined
  private readonly counts = { blocks: 0, bytes: 0, peakHeld: 0 }

  constructor (root: CID, scope: DagScope, limits: CarLimits, init: CarWalkInit = {}) {
    this.root = root
    this.scope = scope
    this.limits = limits
    this.init = init
    this.start = init.path?.terminal.cid ?? root
  }

  get progress (): CarProgress {
    return { blocks: this.counts.blocks, bytes: this.counts.bytes, held: this.sent.size + this.waiting.size, peakHeld: this.counts.peakHeld }
  }

  /**
   * Takes the verified bytes of the block the walk starts at (the root, or the path's
   * terminal) and checks the path and that block against the limits.
   * @throws CarLimitError, MalformedBlockError or UnsupportedCodecError for a start that cannot be served
   * @throws EntityBytesOutOfRangeError for `entity-bytes` wholly past the end of the file
   */
  begin (startBytes: Uint8Array): void {
    for (const block of this.init.path?.blocks ?? []) {
      if (block.cid.equals(this.start)) continue
      this.sent.add(keyOf(block.cid))
      this.count(block.cid, block.bytes)
    }
    this.sent.add(keyOf(this.start))
    let scope: WalkScope = this.scope
    let range: ByteRange = { from: 0, to: 0 }
    const asked = this.init.entityBytes
    const size = asked === undefined ? undefined : fileSize(this.start, startBytes)
    if (asked !== undefined && size !== undefined) {
      const resolved = resolveEntityBytes(asked, size)
      scope = resolved === undefined ? 'block' : 'range'
      range = resolved ?? range
    }
    this.visit(this.start, startBytes, 0, scope, range, true)
    this.startBytes = startBytes
  }

  /**
   * The CAR's bytes: header, the path's blocks, the start block, then every block below it
   * depth-first. Reads storage one block at a time as the consumer pulls, and stops reading
   * as soon as `signal` aborts. However it ends (done, a limit, an error, or the consumer
   * stopping), what the walk held is let go.
   */
  async * stream (blockstore: Pick<PgBlockstore, 'getBytes'>, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const startBytes = this.startBytes
    if (startBytes === undefined) throw new Error('CarWalk.begin must be called with the start block before stream')
    this.startBytes = undefined
    try {
      yield withLengthPrefix(dagCbor.encode({ version: 1, roots: [this.root] }))
      // Identity blocks carry their bytes in the CID; the client has them already.
      for (const block of this.init.path?.blocks ?? []) {
        if (!isInline(block.cid) && !block.cid.equals(this.start)) yield * section(block.cid, block.bytes)
      }
      if (!isInline(this.start)) yield * section(this.start, startBytes)
      for (let next = this.waiting.pop(); next !== undefined; next = this.waiting.pop()) {
        const { cid, depth, scope, range } = next
        const key = keyOf(cid)
        // Sent from a deeper block since it was pushed; a shared file node is read again
        // when this part of the range needs links its earlier walk did not take.
        const again = this.sent.has(key)
        if (again && !(scope === 'range' && this.needsAnotherPart(key, range))) continue
        this.sent.add(key)
        if (isInline(cid)) {
          this.visit(cid, cid.multihash.digest, depth, scope, range, !again)
          continue
        }
        signal.throwIfAborted()
        const bytes = await blockstore.getBytes(cid, { signal })
        signal.throwIfAborted()
        this.visit(cid, bytes, depth, scope, range, !again)
        if (!again) yield * section(cid, bytes)
      }
    } finally {
      this.sent.clear()
      this.partly.clear()
      this.waiting = new LinkStack()
    }
  }

  /** Whether a file node already sent must be walked again for `range`: its earlier walks took only other parts. */
  private needsAnotherPart (key: string, range: ByteRange): boolean {
    const parts = this.partly.get(key)
    return parts !== undefined && !parts.some((part) => part.from <= range.from && part.to >= range.to)
  }

  /** Counts one block to be sent against the byte limit. */
  private count (cid: CID, bytes: Uint8Array): void {
    if (isInline(cid)) return
    const { limits, counts } = this
    counts.blocks++
    counts.bytes += bytes.byteLength
    if (counts.bytes > limits.maxBytes) throw new CarLimitError('gatewayCarMaxBytes', limits.maxBytes, `the DAG is larger than ${limits.maxBytes} bytes`)
  }

  /** Counts one block against the limits (unless it was sent before) and pushes its links still to walk. */
  private visit (cid: CID, bytes: Uint8Array, depth: number, scope: WalkScope, range: ByteRange, first: boolean): void {
    const { limits, counts } = this
    if (first) this.count(cid, bytes)
    let next: NextLinks
    try {
      next = linksIn(cid, bytes, scope, range, limits.maxLinksPerBlock)
    } catch (err) {
      if (err instanceof TooManyLinksError) throw new CarLimitError('dagMaxLinksPerBlock', limits.maxLinksPerBlock, `block ${cid.toString()} links more than ${limits.maxLinksPerBlock} blocks`)
      throw err
    }
    if (scope === 'range') {
      const key = keyOf(cid)
      if (next.whole === true) this.partly.delete(key)
      else this.partly.set(key, [...(this.partly.get(key) ?? []), range])
    }
    if (next.links.length === 0) return
    if (depth + 1 > limits.maxDepth) throw new CarLimitError('gatewayCarMaxDepth', limits.maxDepth, `the DAG is deeper than ${limits.maxDepth} links`)
    const links: Array<{ cid: CID, range?: ByteRange }> = []
    const inBlock = new Set<string>()
    for (const [i, link] of next.links.entries()) {
      const key = keyOf(link)
      const linkRange = next.ranges?.[i]
      // A link met for a part of a shared file node is taken once per distinct part.
      const entry = linkRange === undefined ? key : `${key}:${linkRange.from}:${linkRange.to}`
      if (inBlock.has(entry)) continue
      if (this.sent.has(key) && !(linkRange !== undefined && this.needsAnotherPart(key, linkRange))) continue
      inBlock.add(entry)
      links.push({ cid: link, range: linkRange })
    }
    const held = this.sent.size + this.waiting.size + links.length
    if (held > limits.maxBlocks) throw new CarLimitError('gatewayCarMaxBlocks', limits.maxBlocks, `the DAG has more than ${limits.maxBlocks} blocks`)
    counts.peakHeld = Math.max(counts.peakHeld, held)
    // Last link first, so the first link is on top: walked first, in link order.
    for (let i = links.length - 1; i >= 0; i--) {
      const link = links[i] as { cid: CID, range?: ByteRange }
      this.waiting.push(link.cid, depth + 1, next.scope, link.range)
    }
  }
}
