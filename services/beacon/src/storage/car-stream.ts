import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { varint } from 'multiformats'
import { identity } from 'multiformats/hashes/identity'
import { linksOf } from './dag-links.ts'
import type { PgBlockstore } from './pg-blockstore.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** Trustless gateway `dag-scope`: the root block, the entity it starts (a whole file), or the whole DAG. */
export type DagScope = 'block' | 'entity' | 'all'

/** The CAR media type this stream produces: CARv1, depth-first order, no duplicate blocks. */
export const CAR_CONTENT_TYPE = 'application/vnd.ipld.car; version=1; order=dfs; dups=n'

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
 * The links to follow from a block in a given scope, and the scope each child is walked in.
 * `entity`: a UnixFS file brings all its blocks; a HAMT-sharded directory brings its shard
 * blocks (not the entries); anything else is the block alone.
 */
function next (cid: CID, bytes: Uint8Array, scope: DagScope): Array<{ cid: CID, scope: DagScope }> {
  if (scope === 'block') return []
  // No cap on links yet: the gateway's own limits are the next change.
  if (scope === 'all') return linksOf(cid, bytes, Number.MAX_SAFE_INTEGER).map((link) => ({ cid: link, scope }))
  if (cid.code !== dagPb.code) return []
  const node = dagPb.decode(bytes)
  let unixfs: UnixFS
  try {
    unixfs = UnixFS.unmarshal(node.Data ?? new Uint8Array(0))
  } catch {
    return [] // dag-pb that is not UnixFS: the block is the entity
  }
  if (unixfs.type === 'file' || unixfs.type === 'raw') return node.Links.map((link) => ({ cid: link.Hash, scope: 'all' }))
  if (unixfs.type === 'hamt-sharded-directory' && unixfs.fanout !== undefined) {
    // Shard links are named by their bucket alone (two hex digits at fanout 256); entry links
    // carry the bucket and then the entry's name.
    const bucketChars = (unixfs.fanout - 1n).toString(16).length
    return node.Links.filter((link) => link.Name?.length === bucketChars).map((link) => ({ cid: link.Hash, scope: 'entity' }))
  }
  return []
}

/**
 * A CARv1 of the DAG under `root` within `scope`, read from the Postgres blockstore only
 * (never the network), each block verified as it is read. A block that is missing or
 * corrupt ends the stream with an error, so a client never receives a CAR that looks
 * complete but is not, and never receives bad bytes.
 */
export async function * carStream (blockstore: Pick<PgBlockstore, 'getBytes'>, root: CID, scope: DagScope, options?: AbortOptions): AsyncGenerator<Uint8Array> {
  yield withLengthPrefix(dagCbor.encode({ version: 1, roots: [root] }))
  const seen = new Set<string>()
  const stack: Array<{ cid: CID, scope: DagScope }> = [{ cid: root, scope }]
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const key = item.cid.toString()
    if (seen.has(key)) continue
    seen.add(key)
    const inline = item.cid.multihash.code === identity.code
    const bytes = inline ? item.cid.multihash.digest : await blockstore.getBytes(item.cid, options)
    // Identity blocks carry their bytes in the CID; the client has them already.
    if (!inline) yield withLengthPrefix(item.cid.bytes, bytes)
    // Pushed in reverse so the first link is walked first (depth-first, link order).
    stack.push(...next(item.cid, bytes, item.scope).reverse())
  }
}
