/**
 * The registry journal (docs/registry.md "Cursors and the journal"): changes since a cursor
 * it still covers, each changed account once with its state now, in pages; a fresh snapshot
 * for a cursor older than what it keeps.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RegistryJournal } from '../../src/accounts/registry-journal.ts'
import type { Accounts } from '../../src/accounts/accounts.ts'

/** The part of Accounts the journal reads, over a set the test changes. */
class AccountSet implements Pick<Accounts, 'count' | 'isRegistered' | 'registered' | 'onMembershipChange'> {
  readonly members = new Set<string>()
  private readonly listeners = new Set<(peers: readonly string[]) => void>()
  get count (): number { return this.members.size }
  isRegistered (peer: string): boolean { return this.members.has(peer) }
  registered (): Iterable<string> { return this.members }
  onMembershipChange (listener: (peers: readonly string[]) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  add (peer: string): void { this.members.add(peer); for (const listener of this.listeners) listener([peer]) }
  remove (peer: string): void { this.members.delete(peer); for (const listener of this.listeners) listener([peer]) }
}

const peers = await Promise.all(Array.from({ length: 6 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
const peer = (i: number): string => peers[i] ?? assert.fail()

describe('registry journal', () => {
  it('tells the changes since a cursor in pages, each account once with its state now', () => {
    const accounts = new AccountSet()
    const journal = new RegistryJournal(accounts, { network: 'pharos', now: () => 1 })
    const start = journal.page({ cursor: null, after: null, limit: 10 }).cursor
    accounts.add(peer(0))
    accounts.add(peer(1))
    accounts.remove(peer(0))
    accounts.add(peer(2))
    const first = journal.page({ cursor: start, after: null, limit: 2 })
    assert.deepEqual([first.kind, first.accounts, first.removed, first.more], ['changes', [peer(1)], [peer(0)], true])
    const second = journal.page({ cursor: first.cursor, after: null, limit: 2 })
    assert.deepEqual([second.accounts, second.removed, second.more, second.count], [[peer(2)], [], false, 2])
  })

  it('answers a cursor older than the changes it keeps with a fresh snapshot', () => {
    const accounts = new AccountSet()
    const journal = new RegistryJournal(accounts, { network: 'pharos', maxEntries: 3 })
    const start = journal.page({ cursor: null, after: null, limit: 10 }).cursor
    for (let i = 0; i < 5; i++) accounts.add(peer(i))
    const tooOld = journal.page({ cursor: start, after: null, limit: 10 })
    assert.equal(tooOld.kind, 'snapshot')
    assert.deepEqual(tooOld.accounts, peers.slice(0, 5).sort())
    // Two changes back is still kept.
    const recent = journal.page({ cursor: `${journal.epoch}.${journal.seq - 2}`, after: null, limit: 10 })
    assert.deepEqual([recent.kind, recent.accounts.sort()], ['changes', [peer(3), peer(4)].sort()])
    // A cursor from the future (another life of this epoch, or made up) is not trusted either.
    assert.equal(journal.page({ cursor: `${journal.epoch}.${journal.seq + 1}`, after: null, limit: 10 }).kind, 'snapshot')
  })
})
