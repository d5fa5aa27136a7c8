/**
 * The content keys a peer holds and may hand out (docs/private-posts.md): the keys of its own
 * private posts, and the keys authors pushed to it as an allowed reader. Each is kept with the
 * author's signed allow-list it came with, verified once on arrival; GETKEY answers from here
 * after the shared entitlement check. They are kept in the peer's state store (the document
 * `content-keys`; with `dataDir`, a file of mode 0600), written whole after each change, and
 * every rule in it is verified again when it is read back.
 */
import { keyHashOf, openAllowList } from '@pharos/protocol/log/index.ts'
import type { AllowList } from '@pharos/protocol/log/index.ts'
import type { PeerStateStore } from './state-store.ts'
import type { Logger } from '@libp2p/interface'

/** A held key: the key, its hash, and the author's verified allow-list. */
export interface HeldKey {
  key: Uint8Array
  keyHash: Uint8Array
  /** The signed allow-list as received (what the author signed). */
  rule: Uint8Array
  list: AllowList
}

export type HoldResult = 'held' | 'older-rule' | 'full'

const hex = (bytes: Uint8Array): string => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')
const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')
const fromBase64 = (text: unknown): Uint8Array | undefined => typeof text === 'string' ? new Uint8Array(Buffer.from(text, 'base64')) : undefined

/** The state document the keys are kept in (`content-keys.json` in a fileStateStore folder). */
const DOCUMENT = 'content-keys'

export interface HeldKeysInit {
  /** This peer's ID: its own keys do not count towards `maxPushed`. */
  self: string
  /** Where the keys are kept across restarts (the document `content-keys`). */
  store: PeerStateStore
  /** How many keys pushed by other authors are held at most. */
  maxPushed: number
  log: Logger
}

export class HeldKeys {
  private readonly init: HeldKeysInit
  private readonly keys = new Map<string, HeldKey>()
  private writing: Promise<void> = Promise.resolve()

  constructor (init: HeldKeysInit) {
    this.init = init
  }

  /** Reads the held keys, if any were kept; entries whose rule does not verify are dropped. */
  async load (): Promise<void> {
    const { store, log } = this.init
    const text = await store.read(DOCUMENT)
    if (text === undefined) return
    const document = JSON.parse(text) as { v?: unknown, keys?: unknown }
    if (document.v !== 1 || !Array.isArray(document.keys)) throw new Error(`the ${DOCUMENT} state document is not a content keys document ({ v: 1, keys: [...] })`)
    for (const item of document.keys as Array<{ key?: unknown, rule?: unknown }>) {
      const key = fromBase64(item.key)
      const rule = fromBase64(item.rule)
      const held = key === undefined || rule === undefined ? undefined : await verify(key, rule)
      if (held === undefined) {
        log('dropping a held content key whose rule does not verify')
        continue
      }
      this.keys.set(hex(held.keyHash), held)
    }
  }

  get (keyHash: Uint8Array): HeldKey | undefined {
    return this.keys.get(hex(keyHash))
  }

  /**
   * Holds `key` under `rule` (a verified allow-list), replacing a held one whose rule has a
   * version no higher (an author adding or removing readers). `full` when `maxPushed` keys of
   * other authors are held already.
   */
  async hold (held: HeldKey): Promise<HoldResult> {
    const id = hex(held.keyHash)
    const existing = this.keys.get(id)
    if (existing !== undefined && existing.list.version > held.list.version) return 'older-rule'
    if (existing === undefined && held.list.author !== this.init.self && this.pushedCount() >= this.init.maxPushed) return 'full'
    this.keys.set(id, held)
    await this.persist()
    return 'held'
  }

  private pushedCount (): number {
    let count = 0
    for (const held of this.keys.values()) if (held.list.author !== this.init.self) count++
    return count
  }

  private async persist (): Promise<void> {
    const write = this.writing.then(async () => {
      const keys = [...this.keys.values()].map(({ key, rule }) => ({ key: base64(key), rule: base64(rule) }))
      await this.init.store.write(DOCUMENT, JSON.stringify({ v: 1, keys }) + '\n')
    })
    this.writing = write.catch(() => {})
    await write
  }
}

/** A key and its rule as a HeldKey, if the rule is a signed allow-list for exactly this key. */
export async function verify (key: Uint8Array, rule: Uint8Array): Promise<HeldKey | undefined> {
  const list = await openAllowList(rule)
  if (!list.ok) return undefined
  const keyHash = await keyHashOf(key)
  if (hex(keyHash) !== hex(list.value.keyHash)) return undefined
  return { key, keyHash, rule, list: list.value }
}
