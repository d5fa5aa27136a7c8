import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeCanonical, encodeCbor } from '../src/log/index.ts'
import {
  decodeRegistryRequest,
  encodeRegistryRequest,
  openRegistryPage,
  RegistryReplica,
  signRegistryPage
} from '../src/registry/index.ts'
import type { RegistryPage, RegistryPageBody } from '../src/registry/index.ts'
import { namedKey } from './log-helpers.ts'

const fleet = namedKey('registry-fleet-key')
const stranger = namedKey('registry-stranger')
const ids = Array.from({ length: 7 }, (_, i) => namedKey(`registry-account-${i}`).peerId).sort()
const id = (i: number): string => ids[i] ?? assert.fail()

const body = (fields: Partial<RegistryPageBody>): RegistryPageBody => ({
  network: 'pharos', kind: 'snapshot', cursor: '00112233445566aa.3', count: 3, accounts: [], removed: [], more: false, issuedAt: 1_700_000_000_000, ...fields
})
const page = (fields: Partial<RegistryPageBody>): RegistryPage => ({ ...body(fields), signer: fleet.peerId })

describe('registry pages', () => {
  it('verify against the fleet key, and refuse a tampered page, another signer and another network', async () => {
    const bytes = await signRegistryPage(body({ accounts: [id(0), id(1), id(2)] }), fleet.signer)
    const opened = await openRegistryPage(bytes, { network: 'pharos', signer: fleet.peerId })
    assert.ok(opened.ok)
    assert.deepEqual(opened.value.accounts, [id(0), id(1), id(2)])
    assert.equal(opened.value.count, 3)

    const decoded = decodeCanonical(bytes)
    assert.ok(decoded.ok)
    const statement = decoded.value as { body: RegistryPageBody, sig: Uint8Array }
    // An account slipped into a signed page.
    const added = encodeCbor({ ...statement, body: { ...statement.body, accounts: [...statement.body.accounts, id(3)] } })
    const tampered = await openRegistryPage(added, { network: 'pharos', signer: fleet.peerId })
    assert.equal(tampered.ok ? 'ok' : tampered.code, 'bad-statement-signature')
    // A flipped signature bit.
    const sig = statement.sig.slice()
    sig[10] = (sig[10] ?? 0) ^ 1
    const flipped = await openRegistryPage(encodeCbor({ ...statement, sig }), { network: 'pharos' })
    assert.equal(flipped.ok ? 'ok' : flipped.code, 'bad-statement-signature')

    const foreign = await signRegistryPage(body({ accounts: [id(0)] }), stranger.signer)
    const bySomeoneElse = await openRegistryPage(foreign, { network: 'pharos', signer: fleet.peerId })
    assert.equal(bySomeoneElse.ok ? 'ok' : bySomeoneElse.code, 'bad-signer')
    const otherNetwork = await openRegistryPage(await signRegistryPage(body({ network: 'other' }), fleet.signer), { network: 'pharos' })
    assert.equal(otherNetwork.ok ? 'ok' : otherNetwork.code, 'wrong-network')
    const notPeerIds = await openRegistryPage(await signRegistryPage(body({ accounts: ['alice'] }), fleet.signer), { network: 'pharos' })
    assert.equal(notPeerIds.ok ? 'ok' : notPeerIds.code, 'bad-body')
  })

  it('requests round-trip, and bad ones say why', () => {
    const request = { cursor: '00112233445566aa.42', after: null, limit: 500 }
    assert.deepEqual(decodeRegistryRequest(encodeRegistryRequest(request)), { ok: true, value: request })
    assert.throws(() => encodeRegistryRequest({ cursor: 'yesterday', after: null, limit: 10 }), /cursor/)
    assert.throws(() => encodeRegistryRequest({ cursor: null, after: null, limit: 5000 }), /limit/)
    const both = decodeRegistryRequest(encodeCbor({ t: 'registry', cursor: '00112233445566aa.1', after: id(0), limit: 10 }))
    assert.equal(both.ok, false)
    assert.equal(decodeRegistryRequest(encodeCbor({ t: 'registry', cursor: null, after: 'bob', limit: 10 })).ok, false)
  })
})

describe('registry replica', () => {
  it('takes a snapshot in pages, swaps it in whole, then applies the changes since its first page', () => {
    const replica = new RegistryReplica({ pageSize: 2 })
    assert.equal(replica.ready, false)
    const first = replica.nextRequest()
    assert.deepEqual(first, { cursor: null, after: null, limit: 2 })
    assert.deepEqual(replica.apply(first, page({ cursor: 'aaaaaaaaaaaaaaaa.5', accounts: [id(0), id(1)], count: 4, more: true })), { changed: true, more: true })
    assert.equal(replica.ready, false, 'no copy until the snapshot is whole')
    const second = replica.nextRequest()
    assert.deepEqual(second, { cursor: null, after: id(1), limit: 2 })
    const done = replica.apply(second, page({ cursor: 'aaaaaaaaaaaaaaaa.6', accounts: [id(2), id(3)], count: 4, more: false }))
    assert.deepEqual(done, { changed: true, more: true }, 'the changes made while the pages were fetched are asked for next')
    assert.equal(replica.ready, true)
    assert.equal(replica.count, 4)
    for (const i of [0, 1, 2, 3]) assert.equal(replica.isRegistered(id(i)), true)
    // Changes since the FIRST page's cursor: id(3) was added meanwhile (already held), id(1) removed.
    const changes = replica.nextRequest()
    assert.deepEqual(changes, { cursor: 'aaaaaaaaaaaaaaaa.5', after: null, limit: 2 })
    replica.apply(changes, page({ kind: 'changes', cursor: 'aaaaaaaaaaaaaaaa.7', accounts: [id(3), id(4)], removed: [id(1)], count: 4 }))
    assert.equal(replica.isRegistered(id(1)), false)
    assert.equal(replica.isRegistered(id(4)), true)
    assert.equal(replica.held, 4)
    assert.deepEqual(replica.nextRequest(), { cursor: 'aaaaaaaaaaaaaaaa.7', after: null, limit: 2 })
    // An unknown cursor is answered with a fresh snapshot, which replaces the copy.
    const again = replica.nextRequest()
    replica.apply(again, page({ cursor: 'bbbbbbbbbbbbbbbb.1', accounts: [id(5)], count: 1 }))
    assert.equal(replica.held, 1)
    assert.equal(replica.count, 1)
    assert.equal(replica.isRegistered(id(0)), false)
  })
})
