import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import type { AbortOptions } from '@libp2p/interface'
import { murmur364 } from '@multiformats/murmur3'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { MalformedBlockError } from './dag-links.ts'

/** One block as it was read: its CID and its verified bytes. */
export interface DagBlock {
  cid: CID
  bytes: Uint8Array
}

/** Reads one verified block; an identity CID is answered from the CID itself (see `readBlock`). */
export type BlockReader = (cid: CID, options?: AbortOptions) => Promise<Uint8Array>

/**
 * A block's bytes: an identity CID carries them in its multihash (it is never stored, and
 * the trustless gateway spec's probe `bafkqaaa` is one); any other is read from `getBytes`.
 */
export async function readBlock (getBytes: BlockReader, cid: CID, options?: AbortOptions): Promise<Uint8Array> {
  if (cid.multihash.code === identity.code) return cid.multihash.digest
  return await getBytes(cid, options)
}

/** A path segment that names nothing under the block the path reached. */
export class PathNotFoundError extends Error {
  override readonly name = 'PathNotFoundError'
}

/**
 * The blocks a content path `/ipfs/{root}/{segments…}` crosses, as the trustless gateway
 * spec asks a CAR to carry them before the terminal entity.
 */
export interface ResolvedPath {
  /**
   * Every block read to walk the path, in the order read: the root, then for each segment
   * the HAMT shard blocks crossed (if any) and the block it names. The last is the terminal.
   */
  blocks: DagBlock[]
  /** The block the path ends at. */
  terminal: DagBlock
  /** The CID each logical path segment resolved to, root first (`X-Ipfs-Roots`). */
  roots: CID[]
}

/**
 * A HAMT shard this deep (levels below its root) is refused: 64 bits of hash at the
 * narrowest fanout (2) is 64 levels, and no importer builds deeper (guess, with margin).
 */
const MAX_HAMT_LEVELS = 64

/**
 * Resolves `segments` under `root` through UnixFS directories (plain and HAMT-sharded),
 * plain dag-pb link names, and dag-cbor/dag-json fields and links, reading each block once
 * and keeping every block read: so a CAR can carry what a client needs to verify the path.
 *
 * @throws PathNotFoundError when a segment names nothing (or crosses a file, a raw block or a field that is no link)
 * @throws MalformedBlockError when a block on the path cannot be decoded
 * @throws whatever `getBytes` throws for a block that is missing or corrupt
 */
export async function resolvePath (getBytes: BlockReader, root: CID, segments: readonly string[], options?: AbortOptions): Promise<ResolvedPath> {
  const blocks: DagBlock[] = []
  const read = async (cid: CID): Promise<DagBlock> => {
    const block = { cid, bytes: await readBlock(getBytes, cid, options) }
    blocks.push(block)
    return block
  }
  let current = await read(root)
  const roots = [root]
  let rest = [...segments]
  while (rest.length > 0) {
    const step = await resolveInBlock(current, rest, read)
    current = await read(step.cid)
    roots.push(step.cid)
    rest = step.rest
  }
  return { blocks, terminal: current, roots }
}

/** Resolves one or more leading segments inside `block` to the next linked CID. */
async function resolveInBlock (block: DagBlock, segments: string[], read: (cid: CID) => Promise<DagBlock>): Promise<{ cid: CID, rest: string[] }> {
  const [name = '', ...rest] = segments
  switch (block.cid.code) {
    case dagPb.code: return { cid: await dagPbEntry(block, name, read), rest }
    case dagCbor.code: return ipldField(block, decodeOrThrow(block, dagCbor.decode), segments)
    case dagJson.code: return ipldField(block, decodeOrThrow(block, dagJson.decode), segments)
    default: throw new PathNotFoundError(`${block.cid.toString()} is a raw block: it has no "${name}"`)
  }
}

function decodeOrThrow<T> (block: DagBlock, decode: (bytes: Uint8Array) => T): T {
  try {
    return decode(block.bytes)
  } catch (err) {
    throw new MalformedBlockError(block.cid, err instanceof Error ? err.message : String(err))
  }
}

/** The entry `name` of a UnixFS directory, HAMT shard or plain dag-pb node. */
async function dagPbEntry (block: DagBlock, name: string, read: (cid: CID) => Promise<DagBlock>): Promise<CID> {
  const node = decodeOrThrow(block, dagPb.decode)
  const unixfs = unixfsOf(node)
  if (unixfs?.type === 'hamt-sharded-directory') return await hamtEntry(block.cid, node, unixfs, name, read)
  if (unixfs !== undefined && unixfs.type !== 'directory') {
    throw new PathNotFoundError(`${block.cid.toString()} is a UnixFS ${unixfs.type}, not a directory: it has no "${name}"`)
  }
  // A UnixFS directory, or dag-pb that is not UnixFS: its links are named.
  const link = node.Links.find((candidate) => candidate.Name === name)
  if (link === undefined) throw new PathNotFoundError(`no "${name}" in ${block.cid.toString()}`)
  return link.Hash
}

function unixfsOf (node: dagPb.PBNode): UnixFS | undefined {
  if (node.Data === undefined) return undefined
  try {
    return UnixFS.unmarshal(node.Data)
  } catch {
    return undefined
  }
}

/**
 * Bits of the UnixFS HAMT hash of `name`, most significant first: murmur3-x64-64 of the
 * name (the first 8 bytes of murmur3-x64-128, as go-unixfs and js ipfs-unixfs-importer
 * compute it); past 64 bits, the hash of the name followed by the byte 1, 2, … (as
 * hamt-sharding's InfiniteHash extends it).
 */
class HamtHashBits {
  private readonly name: Uint8Array
  private bytes = new Uint8Array(0)
  private position = 0
  private extension = -1

  constructor (name: string) {
    this.name = new TextEncoder().encode(name)
  }

  async take (bits: number): Promise<number> {
    let value = 0
    for (let i = 0; i < bits; i++) {
      if (this.position === this.bytes.length * 8) {
        this.extension++
        const input = this.extension === 0 ? this.name : Uint8Array.from([...this.name, this.extension])
        this.bytes = (await murmur364.digest(input)).digest
        this.position = 0
      }
      const byte = this.bytes[this.position >> 3] ?? 0
      value = (value << 1) | ((byte >> (7 - (this.position & 7))) & 1)
      this.position++
    }
    return value
  }
}

/**
 * The entry `name` in a HAMT-sharded directory. Each level takes log2(fanout) bits of the
 * name's hash; the bucket's label (that index in upper-case hex, padded to the width of
 * fanout - 1) is either a link to a sub-shard (the label alone) or the entry (the label
 * followed by the name). Every sub-shard crossed is read, so the CAR carries it.
 */
async function hamtEntry (dirCid: CID, rootNode: dagPb.PBNode, rootUnixfs: UnixFS, name: string, read: (cid: CID) => Promise<DagBlock>): Promise<CID> {
  const hash = new HamtHashBits(name)
  let node = rootNode
  let unixfs = rootUnixfs
  let shardCid = dirCid
  for (let level = 0; level <= MAX_HAMT_LEVELS; level++) {
    const fanout = Number(unixfs.fanout ?? 0n)
    const bits = Math.log2(fanout)
    if (!Number.isInteger(bits) || bits < 1 || bits > 16) throw new MalformedBlockError(shardCid, `a HAMT shard's fanout is ${fanout}, not a power of two from 2 to 65536`)
    const width = (fanout - 1).toString(16).length
    const label = (await hash.take(bits)).toString(16).toUpperCase().padStart(width, '0')
    const bucket = node.Links.find((link) => link.Name?.slice(0, width).toUpperCase() === label)
    if (bucket === undefined) throw new PathNotFoundError(`no "${name}" in ${dirCid.toString()}`)
    if (bucket.Name?.length !== width) {
      if (bucket.Name?.slice(width) !== name) throw new PathNotFoundError(`no "${name}" in ${dirCid.toString()}`)
      return bucket.Hash
    }
    const shard = await read(bucket.Hash)
    shardCid = shard.cid
    node = decodeOrThrow(shard, dagPb.decode)
    const next = unixfsOf(node)
    if (next?.type !== 'hamt-sharded-directory') throw new MalformedBlockError(shardCid, 'a HAMT bucket links a block that is not a HAMT shard')
    unixfs = next
  }
  throw new MalformedBlockError(dirCid, `the HAMT is deeper than ${MAX_HAMT_LEVELS} levels`)
}

/**
 * IPLD pathing in dag-cbor/dag-json: map keys and list indices, crossing into the next block
 * at a link. The path must land on a link (the next block); a field that is no link, with
 * segments still to go, names nothing.
 */
function ipldField (block: DagBlock, value: unknown, segments: string[]): { cid: CID, rest: string[] } {
  let here = value
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] ?? ''
    let next: unknown
    if (Array.isArray(here)) {
      next = /^(0|[1-9]\d*)$/.test(segment) ? here[Number(segment)] : undefined
    } else if (here !== null && typeof here === 'object' && !(here instanceof Uint8Array) && CID.asCID(here) === null) {
      next = Object.hasOwn(here, segment) ? (here as Record<string, unknown>)[segment] : undefined
    }
    if (next === undefined) throw new PathNotFoundError(`no "${segments.slice(0, i + 1).join('/')}" in ${block.cid.toString()}`)
    const link = CID.asCID(next)
    if (link !== null) return { cid: link, rest: segments.slice(i + 1) }
    here = next
  }
  throw new PathNotFoundError(`"${segments.join('/')}" in ${block.cid.toString()} is a field, not a link to a block`)
}
