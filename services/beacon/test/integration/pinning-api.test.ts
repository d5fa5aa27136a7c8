import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createContentPeer, httpClient, pinningSpecValidator, randomContent, testConfig, testLogger, waitForPin } from '../helpers/storage.ts'
import type { ContentPeer, HttpCall, JsonBody } from '../helpers/storage.ts'

const ALICE = 'alice-token-0123456789abcdef'
const BOB = 'bob-token-0123456789abcdef00'
const ADMIN = 'admin-token-0123456789abcdef'
const QUOTA = 4096

/**
 * The IPFS Pinning Service API on an embedded (PGlite) worker: every route and filter,
 * every response checked against the spec's own schemas, owners kept apart, and storage
 * accounting with quotas.
 */
describe('IPFS Pinning Service API (embedded PGlite worker)', () => {
  let worker: Worker
  let origin: ContentPeer
  let alice: HttpCall
  let bob: HttpCall
  let validate: Awaited<ReturnType<typeof pinningSpecValidator>>

  before(async () => {
    validate = await pinningSpecValidator()
    worker = await startWorker(await testConfig({
      PHAROS_ADMIN_TOKENS: ADMIN,
      PHAROS_PIN_TOKENS: `alice:${ALICE},bob:${BOB}`,
      PHAROS_PIN_OWNER_QUOTA_BYTES: String(QUOTA),
      PHAROS_PIN_TIMEOUT_MS: '60000'
    }), testLogger())
    assert.equal(worker.mode, 'embedded')
    origin = await createContentPeer()
    alice = httpClient(worker.httpUrl, ALICE)
    bob = httpClient(worker.httpUrl, BOB)
  })

  after(async () => {
    await origin?.stop()
    await worker?.stop()
  })

  /** A raw block of exactly `size` bytes that only the origin peer holds. */
  const block = async (size: number): Promise<CID> => {
    const bytes = randomContent(size)
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await origin.blockstore.put(cid, bytes)
    return cid
  }

  const add = async (call: HttpCall, pin: Record<string, unknown>): Promise<JsonBody> => {
    const { status, body } = await call('POST', '/pins', { origins: origin.multiaddrs(), ...pin })
    assert.equal(status, 202, JSON.stringify(body))
    validate('PinStatus', body)
    return body
  }

  const list = async (call: HttpCall, query: string): Promise<JsonBody> => {
    const { status, body } = await call('GET', `/pins${query}`)
    assert.equal(status, 200, JSON.stringify(body))
    validate('PinResults', body)
    return body
  }

  const expectFailure = async (response: Promise<{ status: number, body: JsonBody }>, status: number, reason: string): Promise<JsonBody> => {
    const { status: actual, body } = await response
    assert.equal(actual, status, JSON.stringify(body))
    validate('Failure', body)
    assert.equal(body.error.reason, reason)
    return body
  }

  it('refuses requests without a valid pinning token', async () => {
    const anonymous = await fetch(`${worker.httpUrl}/pins`)
    assert.equal(anonymous.status, 401)
    validate('Failure', await anonymous.json())
    await expectFailure(httpClient(worker.httpUrl, 'not-a-valid-token-at-all')('GET', '/pins'), 401, 'UNAUTHORIZED')
    // PHAROS_PIN_TOKENS is set, so admin tokens are not pinning tokens.
    await expectFailure(httpClient(worker.httpUrl, ADMIN)('GET', '/pins'), 401, 'UNAUTHORIZED')
  })

  it('rejects malformed pins with 400 in the Failure shape', async () => {
    await expectFailure(alice('POST', '/pins', { cid: 'not-a-cid' }), 400, 'BAD_REQUEST')
    await expectFailure(alice('POST', '/pins', { name: 'no cid' }), 400, 'BAD_REQUEST')
    await expectFailure(alice('POST', '/pins', { cid: (await block(10)).toString(), origins: ['not a multiaddr'] }), 400, 'BAD_REQUEST')
    await expectFailure(alice('GET', '/pins?status=lost'), 400, 'BAD_REQUEST')
    await expectFailure(alice('GET', '/pins?limit=0'), 400, 'BAD_REQUEST')
    await expectFailure(alice('GET', '/pins?meta=not-json'), 400, 'BAD_REQUEST')
  })

  const pins: Record<string, JsonBody> = {}

  it('adds pins that settle, and gets them by requestid', async () => {
    pins.report = await add(alice, { cid: (await block(100)).toString(), name: 'Quarterly-Report.pdf', meta: { app_id: 'docs', kind: 'report' } })
    pins.photo = await add(alice, { cid: (await block(200)).toString(), name: 'holiday photo.jpg', meta: { app_id: 'photos' } })
    pins.notes = await add(alice, { cid: (await block(300)).toString(), name: 'notes 100%_done.txt' })
    for (const key of Object.keys(pins)) {
      pins[key] = await waitForPin(alice, pins[key].requestid)
      validate('PinStatus', pins[key])
      assert.equal(pins[key].status, 'pinned')
    }
    const got = await alice('GET', `/pins/${pins.report.requestid}`)
    assert.equal(got.status, 200)
    validate('PinStatus', got.body)
    assert.deepEqual(got.body.pin.meta, { app_id: 'docs', kind: 'report' })
    assert.equal(got.body.pin.name, 'Quarterly-Report.pdf')
    assert.ok(got.body.delegates.length >= 1 && got.body.delegates.every((addr: string) => addr.includes('/p2p/')))

    // A pin whose content nobody has stays pinning (it is retried until its timeout).
    pins.missing = await add(alice, { cid: CID.createV1(raw.code, await sha256.digest(new Uint8Array([9, 9, 9]))).toString(), origins: [] })
    await waitForPin(alice, pins.missing.requestid, ['pinning'])
  })

  it('lists only pinned pins by default, newest first, and filters by status', async () => {
    const all = await list(alice, '')
    assert.deepEqual(all.results.map((p: JsonBody) => p.requestid), [pins.notes.requestid, pins.photo.requestid, pins.report.requestid])
    assert.equal(all.count, 3)
    const pinning = await list(alice, '?status=pinning')
    assert.deepEqual(pinning.results.map((p: JsonBody) => p.requestid), [pins.missing.requestid])
    const both = await list(alice, '?status=pinning,pinned')
    assert.equal(both.count, 4)
    const exploded = await list(alice, '?status=pinning&status=pinned')
    assert.equal(exploded.count, 4)
  })

  it('filters by cid, name with every match strategy, and meta', async () => {
    assert.deepEqual((await list(alice, `?cid=${pins.report.pin.cid},${pins.photo.pin.cid}`)).results.map((p: JsonBody) => p.requestid).sort(), [pins.report.requestid, pins.photo.requestid].sort())
    // The same CID written as base32 or base36 matches.
    const photoCid = CID.parse(pins.photo.pin.cid)
    assert.equal((await list(alice, `?cid=${photoCid.toString(await import('multiformats/bases/base36').then((m) => m.base36))}`)).count, 1)
    const byName = async (name: string, match?: string): Promise<string[]> =>
      (await list(alice, `?name=${encodeURIComponent(name)}${match === undefined ? '' : `&match=${match}`}`)).results.map((p: JsonBody) => p.pin.name)
    assert.deepEqual(await byName('Quarterly-Report.pdf'), ['Quarterly-Report.pdf'])
    assert.deepEqual(await byName('quarterly-report.pdf'), [])
    assert.deepEqual(await byName('quarterly-report.pdf', 'iexact'), ['Quarterly-Report.pdf'])
    assert.deepEqual(await byName('photo', 'partial'), ['holiday photo.jpg'])
    assert.deepEqual(await byName('PHOTO', 'partial'), [])
    assert.deepEqual(await byName('PHOTO', 'ipartial'), ['holiday photo.jpg'])
    // LIKE wildcards in a name are literal characters.
    assert.deepEqual(await byName('100%_', 'partial'), ['notes 100%_done.txt'])
    assert.deepEqual(await byName('%', 'partial'), ['notes 100%_done.txt'])
    const meta = async (value: Record<string, string>): Promise<string[]> =>
      (await list(alice, `?meta=${encodeURIComponent(JSON.stringify(value))}`)).results.map((p: JsonBody) => p.requestid)
    assert.deepEqual(await meta({ app_id: 'docs' }), [pins.report.requestid])
    assert.deepEqual(await meta({ app_id: 'docs', kind: 'report' }), [pins.report.requestid])
    assert.deepEqual(await meta({ app_id: 'docs', kind: 'photo' }), [])
  })

  it('pages with limit and before/after on the created timestamps it returned', async () => {
    const first = await list(alice, '?limit=2')
    assert.equal(first.count, 3)
    assert.equal(first.results.length, 2)
    const oldest = first.results.at(-1).created
    const rest = await list(alice, `?limit=2&before=${encodeURIComponent(oldest)}`)
    assert.deepEqual(rest.results.map((p: JsonBody) => p.requestid), [pins.report.requestid])
    assert.equal(rest.count, 1)
    const newer = await list(alice, `?after=${encodeURIComponent(pins.report.created)}`)
    assert.deepEqual(newer.results.map((p: JsonBody) => p.requestid), [pins.notes.requestid, pins.photo.requestid])
  })

  it('keeps owners apart', async () => {
    assert.equal((await list(bob, '?status=queued,pinning,pinned,failed')).count, 0)
    await expectFailure(bob('GET', `/pins/${pins.report.requestid}`), 404, 'NOT_FOUND')
    await expectFailure(bob('DELETE', `/pins/${pins.report.requestid}`), 404, 'NOT_FOUND')
    await expectFailure(alice('GET', '/pins/00000000-0000-4000-8000-000000000000'), 404, 'NOT_FOUND')
    await expectFailure(alice('GET', '/pins/not-a-request-id'), 404, 'NOT_FOUND')
  })

  it('replaces a pin: a new requestid, the old one gone', async () => {
    const replacement = await block(150)
    const { status, body } = await alice('POST', `/pins/${pins.photo.requestid}`, { cid: replacement.toString(), name: 'holiday photo v2.jpg', origins: origin.multiaddrs() })
    assert.equal(status, 202, JSON.stringify(body))
    validate('PinStatus', body)
    assert.notEqual(body.requestid, pins.photo.requestid)
    await expectFailure(alice('GET', `/pins/${pins.photo.requestid}`), 404, 'NOT_FOUND')
    const settled = await waitForPin(alice, body.requestid)
    assert.equal(settled.status, 'pinned')
    const { rows } = await worker.db.query('SELECT 1 FROM pins WHERE id = $1', [pins.photo.requestid])
    assert.equal(rows.length, 0, 'the replaced pin is removed once its successor settles')
    await expectFailure(alice('POST', '/pins/00000000-0000-4000-8000-000000000000', { cid: replacement.toString() }), 404, 'NOT_FOUND')
  })

  it('removes a pin with 202 and no body', async () => {
    const removed = await fetch(`${worker.httpUrl}/pins/${pins.notes.requestid}`, { method: 'DELETE', headers: { authorization: `Bearer ${ALICE}` } })
    assert.equal(removed.status, 202)
    assert.equal(await removed.text(), '')
    await expectFailure(alice('GET', `/pins/${pins.notes.requestid}`), 404, 'NOT_FOUND')
    await expectFailure(alice('DELETE', `/pins/${pins.notes.requestid}`), 404, 'NOT_FOUND')
    await expectFailure(alice('DELETE', `/pins/${pins.missing.requestid}`).then(async () => await alice('GET', `/pins/${pins.missing.requestid}`)), 404, 'NOT_FOUND')
  })

  it('refuses meta keys under pharos: (the worker\'s own) with 400 and the reason, on create and replace', async () => {
    const cid = await block(100)
    const forged = await expectFailure(alice('POST', '/pins', { cid: cid.toString(), meta: { 'pharos:kind': 'log-entry', app: 'notes' } }), 400, 'BAD_REQUEST')
    assert.match(forged.error.details, /reserved for the worker: "pharos:kind"/)
    const created = await add(alice, { cid: cid.toString(), meta: { app: 'notes' } })
    const replaced = await expectFailure(alice('POST', `/pins/${created.requestid}`, { cid: cid.toString(), meta: { 'pharos:anything': 'x' } }), 400, 'BAD_REQUEST')
    assert.match(replaced.error.details, /"pharos:anything"/)
    const kept = await alice('GET', `/pins/${created.requestid}`)
    assert.deepEqual(kept.body.pin.meta, { app: 'notes' }, 'the refused replace changed nothing')
    assert.equal(await alice('DELETE', `/pins/${created.requestid}`).then((response) => response.status), 202)
  })

  it('accounts storage per owner, a shared block once, and enforces the quota', async () => {
    const admin = httpClient(worker.httpUrl, ADMIN)
    const shared = await block(3000)
    const first = await waitForPin(bob, (await add(bob, { cid: shared.toString() })).requestid)
    const second = await waitForPin(bob, (await add(bob, { cid: shared.toString(), name: 'same block again' })).requestid)
    assert.equal(first.status, 'pinned')
    assert.equal(second.status, 'pinned', 'a block bob already holds adds nothing to his usage')

    const usage = await admin('GET', '/v1/storage')
    assert.equal(usage.status, 200)
    assert.deepEqual(usage.body.owners.find((o: JsonBody) => o.owner === 'bob'), { owner: 'bob', pins: 2, blocks: 1, bytes: 3000 })

    // Crossing the quota during the fetch fails the pin and names the key.
    const over = await waitForPin(bob, (await add(bob, { cid: (await block(2000)).toString() })).requestid)
    assert.equal(over.status, 'failed')
    assert.match(over.info.status_details, /^PHAROS_PIN_OWNER_QUOTA_BYTES: /)

    // An owner at the quota cannot add pins at all.
    const held = (await admin('GET', '/v1/storage')).body.owners.find((o: JsonBody) => o.owner === 'alice').bytes as number
    const exact = await waitForPin(alice, (await add(alice, { cid: (await block(QUOTA - held)).toString() })).requestid)
    assert.equal(exact.status, 'pinned')
    const refused = await expectFailure(alice('POST', '/pins', { cid: (await block(10)).toString() }), 429, 'STORAGE_QUOTA_EXCEEDED')
    assert.match(refused.error.details, /PHAROS_PIN_OWNER_QUOTA_BYTES/)
    const aliceUsage = (await admin('GET', '/v1/storage')).body.owners.find((o: JsonBody) => o.owner === 'alice')
    assert.equal(aliceUsage.bytes, QUOTA, 'alice holds her quota exactly')
  })
})
