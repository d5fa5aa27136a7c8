import { setMaxListeners } from 'node:events'
import { identity } from 'multiformats/hashes/identity'
import { linksOf } from '../storage/dag-links.ts'
import type { CID } from 'multiformats/cid'

/** A pin's DAG crossed one of its limits. `key` is the config key that set it. */
export class PinLimitError extends Error {
  override readonly name = 'PinLimitError'
  readonly key: string
  readonly limit: number

  constructor (key: string, limit: number, what: string) {
    super(`${key}: ${what} (limit ${limit})`)
    this.key = key
    this.limit = limit
  }
}

export interface DagLimit {
  /** The config key that sets it, named in the failure. */
  key: string
  value: number
}

export interface DagWalkLimits {
  maxBytes: DagLimit
  maxBlocks: DagLimit
  maxDepth: DagLimit
  /** Bytes the owner may still add; only blocks new to the owner count against it. */
  quotaBytes: DagLimit
  /** Links one block may hold (`PHAROS_DAG_MAX_LINKS_PER_BLOCK`); more throws TooManyLinksError. */
  maxLinksPerBlock: number
}

export interface LoadedBlock {
  bytes: Uint8Array
  /** Whether the owner's other pins do not hold it yet (it adds to the owner's usage). */
  newToOwner: boolean
}

export interface DagWalkInit {
  /** A block's verified bytes: from storage, or fetched from peers and stored. */
  load: (cid: CID, signal: AbortSignal) => Promise<LoadedBlock>
  /** Called once per distinct stored block of the DAG (not for identity CIDs). */
  onBlock: (multihash: Uint8Array) => Promise<void>
  limits: DagWalkLimits
  concurrency: number
  signal: AbortSignal
  /**
   * The links to follow out of a block; `maxLinks` is `limits.maxLinksPerBlock`.
   * @default every CID the block links to (`linksOf`)
   */
  links?: (cid: CID, bytes: Uint8Array, depth: number, maxLinks: number) => CID[]
}

export interface DagSize {
  blocks: number
  bytes: number
}

/**
 * Walks the DAG under `root`, loading every block with up to `concurrency` loads in flight,
 * and stops at the first limit crossed. Blocks are counted once by multihash however many
 * times the DAG links them; the CIDs met so far (loaded or waiting) count against the
 * block limit too, so the walk's memory is bounded by it (an identity CID, or two CIDs of
 * one multihash, count there once each).
 */
export async function walkDag (root: CID, init: DagWalkInit): Promise<DagSize> {
  const { limits } = init
  const controller = new AbortController()
  const signal = AbortSignal.any([init.signal, controller.signal])
  // Every block load in flight listens on it (STYLE.md: long-lived shared signals).
  setMaxListeners(Infinity, signal)
  const visited = new Set<string>()
  const counted = new Set<string>()
  const pending: Array<{ cid: CID, depth: number }> = [{ cid: root, depth: 0 }]
  let blocks = 0
  let bytes = 0
  let ownerBytes = 0
  let failure: unknown

  const visit = async ({ cid, depth }: { cid: CID, depth: number }): Promise<void> => {
    const inline = cid.multihash.code === identity.code
    const loaded = inline ? { bytes: cid.multihash.digest, newToOwner: false } : await init.load(cid, signal)
    signal.throwIfAborted()
    const key = Buffer.from(cid.multihash.bytes).toString('base64')
    if (!inline && !counted.has(key)) {
      counted.add(key)
      blocks++
      bytes += loaded.bytes.byteLength
      if (loaded.newToOwner) ownerBytes += loaded.bytes.byteLength
      if (blocks > limits.maxBlocks.value) throw new PinLimitError(limits.maxBlocks.key, limits.maxBlocks.value, `the DAG has more than ${limits.maxBlocks.value} blocks`)
      if (bytes > limits.maxBytes.value) throw new PinLimitError(limits.maxBytes.key, limits.maxBytes.value, `the DAG is larger than ${limits.maxBytes.value} bytes`)
      if (ownerBytes > limits.quotaBytes.value) throw new PinLimitError(limits.quotaBytes.key, limits.quotaBytes.value, 'the pin would take its owner over the storage quota')
      await init.onBlock(cid.multihash.bytes)
    }
    const links = init.links?.(cid, loaded.bytes, depth, limits.maxLinksPerBlock) ?? linksOf(cid, loaded.bytes, limits.maxLinksPerBlock)
    if (links.length > 0 && depth + 1 > limits.maxDepth.value) {
      throw new PinLimitError(limits.maxDepth.key, limits.maxDepth.value, `the DAG is deeper than ${limits.maxDepth.value} links`)
    }
    for (const link of links) {
      const linkKey = link.toString()
      if (visited.has(linkKey)) continue
      visited.add(linkKey)
      pending.push({ cid: link, depth: depth + 1 })
    }
    // Every CID met is a block the walk will load (or fail on), so more than the block
    // limit fails now, before they are fetched: what the walk holds (visited, pending)
    // stays within the limit, however many new links each block brings.
    if (visited.size > limits.maxBlocks.value) throw new PinLimitError(limits.maxBlocks.key, limits.maxBlocks.value, `the DAG has more than ${limits.maxBlocks.value} blocks`)
  }

  visited.add(root.toString())
  const running = new Set<Promise<void>>()
  while (pending.length > 0 || running.size > 0) {
    while (failure === undefined && pending.length > 0 && running.size < init.concurrency) {
      const next = pending.pop()
      if (next === undefined) break
      const task: Promise<void> = visit(next).catch((err: unknown) => {
        // The first error wins; the abort stops the other loads, whose errors are noise.
        failure ??= err
        controller.abort(err)
      }).finally(() => { running.delete(task) })
      running.add(task)
    }
    if (running.size === 0) break
    await Promise.race(running)
  }
  if (failure !== undefined) throw failure
  init.signal.throwIfAborted()
  return { blocks, bytes }
}
