import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import { Token, Tokenizer as CborTokenizer, Type } from 'cborg'
import { Tokenizer as JsonTokenizer } from 'cborg/json'
import { base64 } from 'multiformats/bases/base64'
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

/**
 * A block links more blocks than `PHAROS_DAG_MAX_LINKS_PER_BLOCK` allows. Extraction stops
 * at the first link over the cap, so such a block costs at most the cap in decoded links.
 */
export class TooManyLinksError extends Error {
  override readonly name = 'TooManyLinksError'
  /** The config key of the limit (schema name; the message names its env variable). */
  static readonly configKey = 'dagMaxLinksPerBlock'
  readonly cid: CID
  readonly limit: number

  constructor (cid: CID, limit: number) {
    super(`PHAROS_DAG_MAX_LINKS_PER_BLOCK: block ${cid.toString()} links more than ${limit} blocks (limit ${limit})`)
    this.cid = cid
    this.limit = limit
  }
}

/** A block's bytes match its CID but are not valid in its codec; it never will be, so its DAG cannot be walked. */
export class MalformedBlockError extends Error {
  override readonly name = 'MalformedBlockError'
  readonly cid: CID

  constructor (cid: CID, why: string) {
    super(`block ${cid.toString()} is not valid ${codecName(cid.code)}: ${why}`)
    this.cid = cid
  }
}

function codecName (code: number): string {
  switch (code) {
    case dagPb.code: return dagPb.name
    case dagCbor.code: return dagCbor.name
    case dagJson.code: return dagJson.name
    case raw.code: return raw.name
    default: return `codec 0x${code.toString(16)}`
  }
}

/** What extracting one block's links cost: `nodes` data-model nodes read (map keys included, a link once). */
export interface LinkScan {
  links: CID[]
  nodes: number
}

/** The token stream of one block: cborg's tokenizers, or the dag-json view of one. */
interface Tokens {
  done: () => boolean
  next: () => Token
}

/** A bad block, raised inside the scan and turned into a MalformedBlockError naming the CID. */
class Malformed extends Error {}

/**
 * The dag-json view of cborg's JSON tokens: `{"/": "<cid>"}` becomes a link (tag 42 then
 * the CID's string) and `{"/": {"bytes": "<base64>"}}` becomes bytes, as @ipld/dag-json's own
 * tokenizer does (it is not exported; this follows its rules, ipld/specs#356).
 */
class DagJsonTokens implements Tokens {
  private readonly json: JsonTokenizer
  /** Tokens read ahead while looking for the `"/"` forms, handed out again last-first. */
  private readonly pushedBack: Token[] = []

  constructor (bytes: Uint8Array) {
    this.json = new JsonTokenizer(bytes, { allowBigInt: true, strict: true })
  }

  done (): boolean {
    return this.pushedBack.length === 0 && this.json.done()
  }

  private read (): Token {
    const token = this.pushedBack.pop()
    if (token !== undefined) return token
    if (this.json.done()) throw new Malformed('unexpected end of the block')
    return this.json.next()
  }

  next (): Token {
    const token = this.read()
    if (!Type.equals(token.type, Type.map)) return token
    const key = this.read()
    if (Type.equals(key.type, Type.string) && key.value === '/') {
      const value = this.read()
      if (Type.equals(value.type, Type.string)) {
        if (!Type.equals(this.read().type, Type.break)) throw new Malformed('a {"/": <cid>} link has other keys')
        this.pushedBack.push(value)
        return new Token(Type.tag, 42, 0)
      }
      if (Type.equals(value.type, Type.map)) {
        const innerKey = this.read()
        if (Type.equals(innerKey.type, Type.string) && innerKey.value === 'bytes') {
          const encoded = this.read()
          if (Type.equals(encoded.type, Type.string)) {
            for (let end = 0; end < 2; end++) {
              if (!Type.equals(this.read().type, Type.break)) throw new Malformed('a {"/": {"bytes": …}} form has other keys')
            }
            return new Token(Type.bytes, base64.baseDecode(encoded.value as string), 0)
          }
          this.pushedBack.push(encoded)
        }
        this.pushedBack.push(innerKey)
      }
      this.pushedBack.push(value)
    }
    this.pushedBack.push(key)
    return token
  }
}

const ARRAY = 0
const MAP = 1
/** `left` of a container whose length is not encoded (every JSON one): it ends at a break token. */
const UNTIL_BREAK = -1

/**
 * Every link in one block's token stream, in encoded order, reading each token once and
 * keeping only a stack of open containers: no recursion, so nesting depth costs a few bytes
 * of heap per level and never the call stack (cborg's own decoder recurses per level and
 * overflows the stack a few thousand levels down). Stops at the first link over `maxLinks`.
 */
function scanTokens (tokens: Tokens, cid: CID, maxLinks: number, linkOf: (token: Token) => CID): LinkScan {
  const links: CID[] = []
  // The open containers, innermost last: kind, items still to come (UNTIL_BREAK for JSON),
  // items seen (so a map knows a key position: keys and values alternate).
  const kind: number[] = []
  const left: number[] = []
  const seen: number[] = []
  let nodes = 0
  let complete = false

  // One item of the innermost container is done; close every container that this completes.
  const itemDone = (): void => {
    for (let top = kind.length - 1; top >= 0; top--) {
      seen[top] = (seen[top] ?? 0) + 1
      const remaining = left[top] ?? 0
      if (remaining === UNTIL_BREAK) return
      if (remaining > 1) {
        left[top] = remaining - 1
        return
      }
      kind.pop()
      left.pop()
      seen.pop()
    }
    complete = true
  }

  while (!complete) {
    if (tokens.done()) throw new Malformed('unexpected end of the block')
    const token = tokens.next()
    const top = kind.length - 1
    if (Type.equals(token.type, Type.break)) {
      if (top < 0 || left[top] !== UNTIL_BREAK || (kind[top] === MAP && (seen[top] ?? 0) % 2 === 1)) throw new Malformed('unexpected end of a list or map')
      kind.pop()
      left.pop()
      seen.pop()
      if (kind.length === 0) complete = true
      else itemDone()
      continue
    }
    nodes++
    if (top >= 0 && kind[top] === MAP && (seen[top] ?? 0) % 2 === 0 && !Type.equals(token.type, Type.string)) {
      throw new Malformed(`a map key is a ${token.type.name}, not a string`)
    }
    if (Type.equals(token.type, Type.tag)) {
      if (token.value !== 42) throw new Malformed(`tag ${String(token.value)} is not allowed (only 42, a link)`)
      if (tokens.done()) throw new Malformed('unexpected end of the block')
      if (links.length >= maxLinks) throw new TooManyLinksError(cid, maxLinks)
      links.push(linkOf(tokens.next()))
      itemDone()
    } else if (Type.equals(token.type, Type.array) || Type.equals(token.type, Type.map)) {
      const isMap = Type.equals(token.type, Type.map)
      const count = Number(token.value)
      const items = count === Infinity ? UNTIL_BREAK : isMap ? count * 2 : count
      if (items === 0) {
        itemDone()
      } else {
        kind.push(isMap ? MAP : ARRAY)
        left.push(items)
        seen.push(0)
      }
    } else {
      itemDone()
    }
  }
  if (!tokens.done()) throw new Malformed('bytes after the end of the value')
  return { links, nodes }
}

/** A dag-cbor link: tag 42 over the CID's bytes behind a 0x00 (multibase identity) prefix. */
function cborLink (token: Token): CID {
  const bytes = token.value as unknown
  if (!Type.equals(token.type, Type.bytes) || !(bytes instanceof Uint8Array) || bytes[0] !== 0) throw new Malformed('a tag 42 link is not 0x00-prefixed CID bytes')
  return CID.decode(bytes.subarray(1))
}

function jsonLink (token: Token): CID {
  return CID.parse(token.value as string)
}

/**
 * The CIDs a block links to, in the order they are encoded (dag-pb: link order; dag-cbor
 * and dag-json: the order of the encoded bytes, which is the IPLD data model's map order),
 * and how many nodes reading them took. Linear in the block's size: each token is read once
 * and no JS value of the block is built. The CIDs own their bytes (none is a view into
 * `bytes`), so holding a link does not hold its whole block in memory.
 *
 * @throws TooManyLinksError when the block links more than `maxLinks` CIDs
 * @throws MalformedBlockError when the bytes are not valid in the CID's codec
 * @throws UnsupportedCodecError for a codec links cannot be followed through
 */
export function scanLinks (cid: CID, bytes: Uint8Array, maxLinks: number): LinkScan {
  try {
    switch (cid.code) {
      case raw.code: return { links: [], nodes: 0 }
      case dagPb.code: {
        const node = dagPb.decode(bytes)
        if (node.Links.length > maxLinks) throw new TooManyLinksError(cid, maxLinks)
        // dag-pb's decoder hands out CIDs that view the block's buffer: copy them.
        return { links: node.Links.map((link) => CID.decode(link.Hash.bytes.slice())), nodes: node.Links.length + 1 }
      }
      case dagCbor.code: return scanTokens(new CborTokenizer(bytes, dagCbor.decodeOptions), cid, maxLinks, cborLink)
      case dagJson.code: return scanTokens(new DagJsonTokens(bytes), cid, maxLinks, jsonLink)
      default: throw new UnsupportedCodecError(cid.code)
    }
  } catch (err) {
    if (err instanceof TooManyLinksError || err instanceof UnsupportedCodecError) throw err
    // cborg and the CID parsers throw plain Errors; the block is what was wrong.
    throw new MalformedBlockError(cid, err instanceof Error ? err.message : String(err))
  }
}

/** The CIDs a block links to, in encoded order (see `scanLinks`); more than `maxLinks` throws TooManyLinksError. */
export function linksOf (cid: CID, bytes: Uint8Array, maxLinks: number): CID[] {
  return scanLinks(cid, bytes, maxLinks).links
}
