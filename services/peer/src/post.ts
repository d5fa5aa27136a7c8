/**
 * A feed post's body: the block an `append-feed-post` entry links to as `params.content`.
 *
 *   { text: string, attachments: [{ name: string, size: <bytes>, cid: <UnixFS file root> }] }
 *
 * dag-cbor (CIDv1, sha2-256), so the beacon's DAG walk follows the attachment links and pins
 * the files with the entry. Attachments are UnixFS files (CIDv1, raw leaves) so any IPFS
 * tool — and the beacon's trustless gateway — can read them.
 */
import { CID } from 'multiformats/cid'
import { cborCid, decodeCanonical, encodeCbor } from '@pharos/protocol/log/index.ts'
import { MAX_ATTACHMENT_NAME_LENGTH, MAX_ATTACHMENTS, MAX_POST_BODY_BYTES } from './constants.ts'
import { PostFormatError } from './errors.ts'

/** An attachment as the body records it. */
export interface AttachmentLink {
  name: string
  /** Bytes of the file. */
  size: number
  /** The UnixFS file's root CID. */
  cid: CID
}

export interface PostBody {
  text: string
  attachments: AttachmentLink[]
}

/** An attachment to publish. */
export interface AttachmentInput {
  /** A display and file name; the reader sanitises it before writing it anywhere. */
  name: string
  bytes: Uint8Array
}

/** Why a name is not a valid attachment name, or undefined if it is. */
export function attachmentNameProblem (name: unknown): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'an attachment name is a non-empty string'
  if (name.length > MAX_ATTACHMENT_NAME_LENGTH) return `an attachment name is at most ${MAX_ATTACHMENT_NAME_LENGTH} characters`
  return undefined
}

/** Encodes a body; throws PostFormatError for a body no reader would accept. */
export async function encodePostBody (body: PostBody): Promise<{ bytes: Uint8Array, cid: CID }> {
  if (body.attachments.length > MAX_ATTACHMENTS) throw new PostFormatError('(new)', `at most ${MAX_ATTACHMENTS} attachments`)
  for (const attachment of body.attachments) {
    const problem = attachmentNameProblem(attachment.name)
    if (problem !== undefined) throw new PostFormatError('(new)', problem)
  }
  const bytes = encodeCbor({
    text: body.text,
    attachments: body.attachments.map(({ name, size, cid }) => ({ name, size, cid }))
  })
  if (bytes.length > MAX_POST_BODY_BYTES) throw new PostFormatError('(new)', `body of ${bytes.length} bytes > ${MAX_POST_BODY_BYTES}`)
  return { bytes, cid: await cborCid(bytes) }
}

const isMap = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array) && CID.asCID(value) === null

/** Decodes and checks a body block; `cid` names it in errors. */
export function decodePostBody (bytes: Uint8Array, cid: CID | string): PostBody {
  const name = cid.toString()
  if (bytes.length > MAX_POST_BODY_BYTES) throw new PostFormatError(name, `body of ${bytes.length} bytes > ${MAX_POST_BODY_BYTES}`)
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) throw new PostFormatError(name, `not a dag-cbor body: ${decoded.detail}`)
  const value = decoded.value
  if (!isMap(value) || typeof value.text !== 'string' || !Array.isArray(value.attachments)) {
    throw new PostFormatError(name, 'a post body is { text: string, attachments: [...] }')
  }
  if (value.attachments.length > MAX_ATTACHMENTS) throw new PostFormatError(name, `more than ${MAX_ATTACHMENTS} attachments`)
  const attachments: AttachmentLink[] = []
  for (const [index, item] of value.attachments.entries()) {
    const link = isMap(item) ? CID.asCID(item.cid) : null
    if (!isMap(item) || link === null || typeof item.size !== 'number' || !Number.isSafeInteger(item.size) || item.size < 0) {
      throw new PostFormatError(name, `attachment ${index} is not { name, size, cid }`)
    }
    const problem = attachmentNameProblem(item.name)
    if (problem !== undefined) throw new PostFormatError(name, `attachment ${index}: ${problem}`)
    attachments.push({ name: item.name as string, size: item.size, cid: link })
  }
  return { text: value.text, attachments }
}

/**
 * A private post's block (docs/private-posts.md): what `params.content` links to when the
 * entry carries `params.enckey`.
 *
 *   { v: 1, sealed: <the body above, dag-cbor, sealed under the post's key>, files: [<CID>] }
 *
 * `files` lists the attachments' roots in the clear — encrypted UnixFS files, nothing of
 * them readable — so a beacon's DAG walk pins them with the entry; their names and sizes are
 * inside `sealed`. The sealed body's attachments name those files and their sealed sizes.
 */
export interface PrivatePostBlock {
  v: 1
  sealed: Uint8Array
  files: CID[]
}

/** Largest private post block: a sealed body of the largest size, and one link per attachment. */
const MAX_PRIVATE_POST_BYTES = MAX_POST_BODY_BYTES + 64 + MAX_ATTACHMENTS * 48 + 1024

export async function encodePrivatePostBlock (block: Omit<PrivatePostBlock, 'v'>): Promise<{ bytes: Uint8Array, cid: CID }> {
  const bytes = encodeCbor({ v: 1, sealed: block.sealed, files: block.files })
  if (bytes.length > MAX_PRIVATE_POST_BYTES) throw new PostFormatError('(new)', `private post block of ${bytes.length} bytes > ${MAX_PRIVATE_POST_BYTES}`)
  return { bytes, cid: await cborCid(bytes) }
}

export function decodePrivatePostBlock (bytes: Uint8Array, cid: CID | string): PrivatePostBlock {
  const name = cid.toString()
  if (bytes.length > MAX_PRIVATE_POST_BYTES) throw new PostFormatError(name, `private post block of ${bytes.length} bytes > ${MAX_PRIVATE_POST_BYTES}`)
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) throw new PostFormatError(name, `not a dag-cbor block: ${decoded.detail}`)
  const value = decoded.value
  if (!isMap(value) || value.v !== 1 || !(value.sealed instanceof Uint8Array) || !Array.isArray(value.files) || value.files.length > MAX_ATTACHMENTS) {
    throw new PostFormatError(name, 'a private post block is { v: 1, sealed: bytes, files: [CID] }')
  }
  const files: CID[] = []
  for (const file of value.files) {
    const link = CID.asCID(file)
    if (link === null) throw new PostFormatError(name, 'a private post block\'s files are CIDs')
    files.push(link)
  }
  return { v: 1, sealed: value.sealed, files }
}
