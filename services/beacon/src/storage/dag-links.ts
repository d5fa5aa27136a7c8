import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'

/** A block's codec is not one Pharos can follow links through, so its DAG cannot be pinned. */
export class UnsupportedCodecError extends Error {
  override readonly name = 'UnsupportedCodecError'
  readonly codec: number

  constructor (codec: number) {
    super(`codec 0x${codec.toString(16)} is not supported (supported: dag-pb, dag-cbor, dag-json, raw)`)
    this.codec = codec
  }
}

function * cidsIn (value: unknown): Generator<CID> {
  const cid = CID.asCID(value)
  if (cid !== null) {
    yield cid
    return
  }
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return
  for (const child of Array.isArray(value) ? value : Object.values(value)) yield * cidsIn(child)
}

/** The CIDs a block links to, in the order they appear (dag-pb: link order). */
export function linksOf (cid: CID, bytes: Uint8Array): CID[] {
  switch (cid.code) {
    case raw.code: return []
    case dagPb.code: return dagPb.decode(bytes).Links.map((link) => link.Hash)
    case dagCbor.code: return [...cidsIn(dagCbor.decode(bytes))]
    case dagJson.code: return [...cidsIn(dagJson.decode(bytes))]
    default: throw new UnsupportedCodecError(cid.code)
  }
}
