/**
 * Fetching posts over Bitswap from whoever holds them (beacons serve pinned content): the
 * body and every block of each attachment, each checked against its CID by Helia, and the
 * shapes and sizes checked against what the body says.
 */
import type { UnixFS } from '@helia/unixfs'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { decodeKeyHashParam, FEED_POST_ACTION } from '@pharos/protocol/log/index.ts'
import type { Entry, EntryBlock } from '@pharos/protocol/log/index.ts'
import { collectBytes } from './bytes.ts'
import { open } from './content-cipher.ts'
import type { ContentKeys } from './content-keys.ts'
import { FETCH_CONCURRENCY, REWANT_AFTER_MS } from './constants.ts'
import type { PeerTimeouts } from './constants.ts'
import { PostFormatError, RequestTimeoutError } from './errors.ts'
import { asError } from './failures.ts'
import type { PeerRun } from './lifecycle.ts'
import { decodePostBody, decodePrivatePostBlock } from './post.ts'
import type { AttachmentLink } from './post.ts'
import { report } from './progress.ts'
import type { FetchPostOptions, FetchPostProgress } from './progress.ts'
import type { Helia } from '@helia/interface'

/** A post as `fetchPost` returns it: every byte hash-verified, every size as the body says. */
export interface Post {
  text: string
  /** Each attachment's bytes (decrypted, for a private post); `cid` is the file as stored (sealed, for a private post). */
  attachments: Array<{ name: string, bytes: Uint8Array, cid: CID }>
  /** Present for a private post, which was decrypted with the key whose hash is `keyHash` (`params.enckey`). */
  private?: { keyHash: Uint8Array }
}

export interface FetcherComponents {
  /** Helia's blockstore: local blocks, and Bitswap for the rest. */
  blockstore: Pick<Helia['blockstore'], 'get'>
  fs: Pick<UnixFS, 'cat'>
  timeouts: Pick<PeerTimeouts, 'fetchPostMs'>
  /** Largest attachment fetched (PharosPeerInit.maxAttachmentBytes). */
  maxAttachmentBytes: number
  /** Where a private post's key comes from. */
  keys: Pick<ContentKeys, 'find'>
  run: PeerRun
}

export class Fetcher {
  private readonly components: FetcherComponents

  constructor (components: FetcherComponents) {
    this.components = components
  }

  /**
   * A post's body and attachments, bounded by `timeouts.fetchPostMs`. A private post (its
   * entry carries `params.enckey`) is decrypted once its key is had (KeyDeniedError if not).
   */
  async fetchPost (entry: Entry | EntryBlock, options: FetchPostOptions): Promise<Post> {
    const { timeouts, run } = this.components
    const fields = 'entry' in entry ? entry.entry : entry
    const content = CID.asCID(fields.params.content)
    if (fields.action !== FEED_POST_ACTION || content === null) throw new PostFormatError('(entry)', `not an ${FEED_POST_ACTION} entry with params.content`)
    const keyHash = fields.params.enckey === undefined ? undefined : decodeKeyHashParam(fields.params.enckey)
    if (fields.params.enckey !== undefined && keyHash === undefined) throw new PostFormatError(content.toString(), 'params.enckey is not a base58btc sha2-256 multihash of the key')
    const timeout = AbortSignal.timeout(timeouts.fetchPostMs)
    const signal = AbortSignal.any([timeout, run.signal, ...(options.signal === undefined ? [] : [options.signal])])
    const progress: FetchPostProgress = { post: content, blocks: 0, bytes: 0, attachments: 0, totalAttachments: 0 }
    const onBlock = (cid: CID, bytes: Uint8Array): void => {
      progress.blocks++
      progress.bytes += bytes.length
      report(options, 'pharos:fetch-post:block', { ...progress, cid })
    }
    try {
      // A reader that may not have the key learns it before fetching anything.
      const key = keyHash === undefined ? undefined : await this.components.keys.find(keyHash, fields.author, { signal })
      const blockBytes = await this.fetchBlock(content, signal)
      let body
      if (key === undefined) {
        body = decodePostBody(blockBytes, content)
      } else {
        const sealed = decodePrivatePostBlock(blockBytes, content)
        body = decodePostBody(await open(key, sealed.sealed, 'body', `post ${content.toString()}`), content)
        const pinned = new Set(sealed.files.map((file) => file.toString()))
        const unlisted = body.attachments.find((link) => !pinned.has(link.cid.toString()))
        if (unlisted !== undefined) throw new PostFormatError(content.toString(), `attachment ${unlisted.name} is not among the block's files`)
      }
      progress.totalAttachments = body.attachments.length
      onBlock(content, blockBytes)
      const attachments: Post['attachments'] = []
      for (const link of body.attachments) {
        const stored = await this.fetchFile(content, link, signal, onBlock)
        const bytes = key === undefined ? stored : await open(key, stored, 'file', `post ${content.toString()}, attachment ${link.name}`)
        attachments.push({ name: link.name, cid: link.cid, bytes })
        progress.attachments++
        report(options, 'pharos:fetch-post:attachment', { ...progress, name: link.name })
      }
      return keyHash === undefined ? { text: body.text, attachments } : { text: body.text, attachments, private: { keyHash } }
    } catch (err) {
      if (timeout.aborted && options.signal?.aborted !== true) throw new RequestTimeoutError(`fetching post ${content.toString()}`, timeouts.fetchPostMs)
      throw err
    }
  }

  /** One block, local or over Bitswap, re-wanting it until `signal` ends (see REWANT_AFTER_MS). */
  private async fetchBlock (cid: CID, signal: AbortSignal): Promise<Uint8Array> {
    for (;;) {
      const rewant = AbortSignal.timeout(REWANT_AFTER_MS)
      try {
        return await collectBytes(this.components.blockstore.get(cid, { signal: AbortSignal.any([signal, rewant]) }))
      } catch (err) {
        if (signal.aborted || !rewant.aborted) throw err
      }
    }
  }

  /**
   * An attachment's bytes: every block of its UnixFS DAG is fetched (verified by Helia),
   * bounded by the declared size plus DAG overhead, then read back offline.
   */
  private async fetchFile (post: CID, link: AttachmentLink, signal: AbortSignal, onBlock: (cid: CID, bytes: Uint8Array) => void): Promise<Uint8Array> {
    const { fs, maxAttachmentBytes } = this.components
    const name = post.toString()
    if (link.size > maxAttachmentBytes) throw new PostFormatError(name, `attachment ${link.name} is ${link.size} bytes, more than the ${maxAttachmentBytes} this peer fetches`)
    // Interior dag-pb nodes cost ~50 bytes per 1 MiB leaf; this is generous (guess).
    const budget = link.size + Math.ceil(link.size / 16) + 1024 * 1024
    let fetched = 0
    let frontier = [link.cid]
    while (frontier.length > 0) {
      const next: CID[] = []
      for (let i = 0; i < frontier.length; i += FETCH_CONCURRENCY) {
        const blocks = await Promise.all(frontier.slice(i, i + FETCH_CONCURRENCY).map(async (cid) => ({ cid, bytes: await this.fetchBlock(cid, signal) })))
        for (const { cid, bytes } of blocks) {
          fetched += bytes.length
          onBlock(cid, bytes)
          if (fetched > budget) throw new PostFormatError(name, `attachment ${link.name}'s DAG is larger than its declared ${link.size} bytes`)
          if (cid.code === dagPb.code) next.push(...dagPb.decode(bytes).Links.map((child) => child.Hash))
          else if (cid.code !== raw.code) throw new PostFormatError(name, `attachment ${link.name} is not a UnixFS file (codec 0x${cid.code.toString(16)})`)
        }
      }
      frontier = next
    }
    let bytes: Uint8Array
    try {
      bytes = await collectBytes(fs.cat(link.cid, { offline: true, signal }), { max: link.size, tooLarge: () => new PostFormatError(name, `attachment ${link.name} is larger than its declared ${link.size} bytes`) })
    } catch (err) {
      if (err instanceof PostFormatError || signal.aborted) throw err
      throw new PostFormatError(name, `attachment ${link.name} is not a UnixFS file: ${asError(err).message}`)
    }
    if (bytes.length !== link.size) throw new PostFormatError(name, `attachment ${link.name} is ${bytes.length} bytes, the body says ${link.size}`)
    return bytes
  }
}
