/**
 * Accounts from a JSON document the operator keeps outside the worker (PHAROS_ACCOUNTS_SOURCE
 * = `file:///…` or `https://…`): read at start, and again at each refresh
 * (PHAROS_ACCOUNTS_REFRESH_MS). The document is
 *
 *   { "accounts": [ "12D3KooW…", { "peerId": "12D3KooW…", "label": "alice" }, … ] }
 *
 * (a bare array is taken too). IDs may be in any encoding of an ed25519 peer ID and are kept
 * canonical; IDs that cannot be accounts are left out and reported. The admin API cannot write
 * here (ExternalAccountSourceError, a 409). A refresh that fails (file missing, server down,
 * a document that is not one) keeps the accounts last read, so a bad edit never empties the
 * overlay; at start there is nothing to keep, and the worker refuses to start.
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { canonicalOrUndefined } from './account-registry.ts'
import type { Account } from './account-registry.ts'
import { ExternalAccountSourceError } from './accounts.ts'
import type { Accounts } from './accounts.ts'

/** A document larger than this is refused (guess: ~1M accounts with labels). */
export const MAX_ACCOUNTS_DOCUMENT_BYTES = 128 * 1024 * 1024
/** Fetching the document from a URL must finish within this (guess). */
export const ACCOUNTS_FETCH_TIMEOUT_MS = 30_000

/** The accounts document could not be read or is not one. */
export class AccountsDocumentError extends Error {
  override readonly name = 'AccountsDocumentError'
}

/** Reads the raw text of the accounts document: a file, a URL, or (tests, tools) anything else. */
export interface AccountsDocumentReader {
  readonly kind: 'file' | 'url'
  /** Where, for messages (the path, or the URL without credentials). */
  readonly where: string
  read: (signal: AbortSignal) => Promise<string>
}

/** The reader for a `file:`, `http:` or `https:` URL (PHAROS_ACCOUNTS_SOURCE). */
export function accountsDocumentReader (source: string): AccountsDocumentReader {
  const url = new URL(source)
  if (url.protocol === 'file:') {
    const path = fileURLToPath(url)
    return {
      kind: 'file',
      where: path,
      read: async (signal) => {
        const bytes = await readFile(path, { signal })
        if (bytes.length > MAX_ACCOUNTS_DOCUMENT_BYTES) throw new AccountsDocumentError(`${path} is ${bytes.length} bytes, more than ${MAX_ACCOUNTS_DOCUMENT_BYTES}`)
        return bytes.toString('utf8')
      }
    }
  }
  const shown = new URL(url)
  shown.username = ''
  shown.password = ''
  const where = shown.toString()
  return {
    kind: 'url',
    where,
    read: async (signal) => {
      const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(ACCOUNTS_FETCH_TIMEOUT_MS)]), headers: { accept: 'application/json' } })
      if (!response.ok) throw new AccountsDocumentError(`${where} answered HTTP ${response.status}`)
      const length = Number(response.headers.get('content-length') ?? '0')
      if (length > MAX_ACCOUNTS_DOCUMENT_BYTES) throw new AccountsDocumentError(`${where} sends ${length} bytes, more than ${MAX_ACCOUNTS_DOCUMENT_BYTES}`)
      const text = await response.text()
      if (text.length > MAX_ACCOUNTS_DOCUMENT_BYTES) throw new AccountsDocumentError(`${where} sent more than ${MAX_ACCOUNTS_DOCUMENT_BYTES} bytes`)
      return text
    }
  }
}

interface DocumentAccount { peerId: string, label: string | null }

/** The accounts of a document's text, with the IDs that cannot be accounts. Throws AccountsDocumentError. */
export function parseAccountsDocument (text: string, where: string): { accounts: Map<string, DocumentAccount>, invalid: string[] } {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new AccountsDocumentError(`${where} is not JSON: ${(err as Error).message}`)
  }
  const items = Array.isArray(value) ? value : typeof value === 'object' && value !== null ? (value as { accounts?: unknown }).accounts : undefined
  if (!Array.isArray(items)) throw new AccountsDocumentError(`${where} must be { "accounts": [ "12D3KooW…" | { "peerId", "label"? }, … ] } or an array of those`)
  const accounts = new Map<string, DocumentAccount>()
  const invalid: string[] = []
  for (const item of items) {
    const given = typeof item === 'string' ? item : typeof item === 'object' && item !== null ? (item as { peerId?: unknown }).peerId : undefined
    const label = typeof item === 'object' && item !== null && typeof (item as { label?: unknown }).label === 'string' ? (item as { label: string }).label : null
    const peerId = typeof given === 'string' ? canonicalOrUndefined(given) : undefined
    if (peerId === undefined) {
      invalid.push(typeof given === 'string' ? given : JSON.stringify(item).slice(0, 80))
      continue
    }
    accounts.set(peerId, { peerId, label })
  }
  return { accounts, invalid }
}

export interface ExternalAccountsOptions {
  /** Told, once per distinct set, of entries that cannot be accounts (left out of N). */
  onInvalidIds?: (ids: string[]) => void
  /** When the accounts were (first) read: an account's `createdAt`. @default Date.now */
  now?: () => number
}

/** Accounts from an operator's JSON document (see the module comment). */
export class ExternalAccounts implements Accounts {
  readonly source: 'file' | 'url'
  private readonly reader: AccountsDocumentReader
  private readonly onInvalidIds: (ids: string[]) => void
  private readonly now: () => number
  private accounts = new Map<string, DocumentAccount & { createdAt: string }>()
  private sorted: string[] | undefined
  private reportedInvalid = ''
  private refreshing: Promise<void> | undefined
  private readonly countListeners = new Set<(count: number) => void>()
  private readonly membershipListeners = new Set<(peers: readonly string[]) => void>()

  constructor (reader: AccountsDocumentReader, options: ExternalAccountsOptions = {}) {
    this.reader = reader
    this.source = reader.kind
    this.onInvalidIds = options.onInvalidIds ?? (() => {})
    this.now = options.now ?? Date.now
  }

  get count (): number {
    return this.accounts.size
  }

  isRegistered (peerId: string): boolean {
    return this.accounts.has(peerId)
  }

  registered (): Iterable<string> {
    return this.accounts.keys()
  }

  /** Reads the document again; throws AccountsDocumentError (or the read's error) and keeps the accounts it had. */
  async refresh (): Promise<void> {
    // One read at a time; a call made meanwhile shares it.
    this.refreshing ??= this.load().finally(() => { this.refreshing = undefined })
    await this.refreshing
  }

  /** Another worker cannot change an external source: read it again all the same. */
  async reload (_peerIds: readonly string[]): Promise<void> {
    await this.refresh()
  }

  private async load (): Promise<void> {
    const text = await this.reader.read(AbortSignal.timeout(ACCOUNTS_FETCH_TIMEOUT_MS))
    const { accounts, invalid } = parseAccountsDocument(text, this.reader.where)
    const invalidKey = invalid.sort().join(',')
    if (invalid.length > 0 && invalidKey !== this.reportedInvalid) this.onInvalidIds(invalid)
    this.reportedInvalid = invalidKey
    const now = new Date(this.now()).toISOString()
    const next = new Map<string, DocumentAccount & { createdAt: string }>()
    const moved: string[] = []
    for (const [peerId, account] of accounts) {
      const known = this.accounts.get(peerId)
      if (known === undefined) moved.push(peerId)
      next.set(peerId, { ...account, createdAt: known?.createdAt ?? now })
    }
    for (const peerId of this.accounts.keys()) if (!next.has(peerId)) moved.push(peerId)
    const before = this.accounts.size
    this.accounts = next
    if (moved.length > 0) {
      this.sorted = undefined
      for (const listener of this.membershipListeners) listener(moved)
    }
    if (next.size !== before) for (const listener of this.countListeners) listener(next.size)
  }

  onChange (_listener: (change: { op: 'add' | 'remove', peer: string }) => void): () => void {
    // Nothing changes through this worker.
    return () => {}
  }

  onCountChange (listener: (count: number) => void): () => void {
    this.countListeners.add(listener)
    return () => { this.countListeners.delete(listener) }
  }

  onMembershipChange (listener: (peers: readonly string[]) => void): () => void {
    this.membershipListeners.add(listener)
    return () => { this.membershipListeners.delete(listener) }
  }

  async list (limit: number, after?: string): Promise<Account[]> {
    this.sorted ??= [...this.accounts.keys()].sort()
    const sorted = this.sorted
    let start = 0
    if (after !== undefined) {
      // First ID after `after` (binary search).
      let high = sorted.length
      while (start < high) {
        const middle = (start + high) >>> 1
        if ((sorted[middle] ?? '') <= after) start = middle + 1
        else high = middle
      }
    }
    return sorted.slice(start, start + limit).flatMap((peerId) => {
      const account = this.accounts.get(peerId)
      return account === undefined ? [] : [account]
    })
  }

  async get (peerId: string): Promise<Account | undefined> {
    const canonical = canonicalOrUndefined(peerId)
    return canonical === undefined ? undefined : this.accounts.get(canonical)
  }

  async add (_peerId: string, _label?: string): Promise<boolean> {
    throw new ExternalAccountSourceError(this.source, this.reader.where)
  }

  async remove (_peerId: string): Promise<boolean> {
    throw new ExternalAccountSourceError(this.source, this.reader.where)
  }
}
