import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { Configuration, RemotePinningServiceClient, Status } from '@ipfs-shipyard/pinning-service-client'
import type { PinStatus } from '@ipfs-shipyard/pinning-service-client'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { collectBytes } from '../../src/storage/pg-blockstore.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createContentPeer, httpClient, MiB, pinningSpecValidator, randomContent, testConfig, testLogger } from '../helpers/storage.ts'
import type { ContentPeer, HttpCall, JsonBody } from '../helpers/storage.ts'
import { waitForValue } from '@pharos/testing/wait.ts'

const TOKEN = 'app-token-0123456789abcdef'

/** What the client throws for a non-2xx answer: the fetch Response itself. */
async function failureOf (call: Promise<unknown>): Promise<{ status: number, body: JsonBody }> {
  try {
    await call
  } catch (thrown) {
    assert.ok(thrown instanceof Response, `expected an HTTP error, got ${String(thrown)}`)
    return { status: thrown.status, body: await thrown.json() }
  }
  assert.fail('the request succeeded')
}

/** A CID whose block is inline (identity multihash): it pins at once, with no peer to fetch from. */
function inlineCid (text: string): string {
  return CID.createV1(raw.code, identity.digest(new TextEncoder().encode(text))).toString()
}

/**
 * The Pinning Service API through the official generated client,
 * `@ipfs-shipyard/pinning-service-client` (issue 20, item 1): its `meta` filter (sent as
 * `meta[key]=value`) scopes a list, an unknown parameter is refused, a pin of an unsupported
 * hash fails at once naming it, and a pin being fetched shows its progress.
 */
describe('Pinning Service API through @ipfs-shipyard/pinning-service-client (embedded worker)', () => {
  let worker: Worker
  let client: RemotePinningServiceClient
  let call: HttpCall
  let origin: ContentPeer
  let validate: Awaited<ReturnType<typeof pinningSpecValidator>>

  before(async () => {
    validate = await pinningSpecValidator()
    worker = await startWorker(await testConfig({
      PHAROS_PIN_TOKENS: `app:${TOKEN}`,
      // One job at a time: a second pin waits `queued` behind one that cannot finish yet.
      PHAROS_PIN_CONCURRENCY: '1',
      PHAROS_PIN_STALL_TIMEOUT_MS: '120000',
      PHAROS_PIN_TIMEOUT_MS: '120000'
    }), testLogger())
    client = new RemotePinningServiceClient(new Configuration({ endpointUrl: worker.httpUrl, accessToken: TOKEN }))
    call = httpClient(worker.httpUrl, TOKEN)
    origin = await createContentPeer()
  })

  after(async () => {
    await origin?.stop()
    await worker?.stop()
  })

  const settled = async (requestid: string, statuses: Status[] = [Status.Pinned, Status.Failed]): Promise<PinStatus> =>
    await waitForValue(`pin ${requestid} to be ${statuses.join(' or ')}`, 60_000, async () => {
      const status = await client.pinsRequestidGet({ requestid })
      return statuses.includes(status.status) ? status : undefined
    })

  it('lists only the pins whose meta matches, with meta sent as meta[key]=value by the client', async () => {
    const docs = await client.pinsPost({ pin: { cid: inlineCid('docs 1'), meta: { app_id: 'docs', kind: 'report' } } })
    const docs2 = await client.pinsPost({ pin: { cid: inlineCid('docs 2'), meta: { app_id: 'docs' } } })
    const photos = await client.pinsPost({ pin: { cid: inlineCid('photos 1'), meta: { app_id: 'photos' } } })
    const plain = await client.pinsPost({ pin: { cid: inlineCid('no meta') } })
    for (const pin of [docs, docs2, photos, plain]) assert.equal((await settled(pin.requestid)).status, Status.Pinned)

    // What the client puts on the wire: the deepObject form, not the spec's JSON string.
    const urls: string[] = []
    const watched = client.withPreMiddleware(async ({ url, init }) => { urls.push(url); return { url, init } })
    const scoped = await watched.pinsGet({ meta: { app_id: 'docs' } })
    assert.match(urls[0] ?? '', /[?&]meta%5Bapp_id%5D=docs(&|$)/)
    assert.deepEqual(scoped.results.map((pin) => pin.requestid).sort(), [docs.requestid, docs2.requestid].sort())
    assert.equal(scoped.count, 2)

    // Every pair must match (AND), as with the JSON form.
    const both = await client.pinsGet({ meta: { app_id: 'docs', kind: 'report' } })
    assert.deepEqual(both.results.map((pin) => pin.requestid), [docs.requestid])
    assert.equal((await client.pinsGet({ meta: { app_id: 'nobody' } })).count, 0)
    // Meta alongside other filters (status, several of them, as the client sends them).
    const withStatus = await client.pinsGet({ meta: { app_id: 'photos' }, status: [Status.Pinned, Status.Queued] })
    assert.deepEqual(withStatus.results.map((pin) => pin.requestid), [photos.requestid])
    // No filter: the whole list, so the filter above did narrow it.
    assert.equal((await client.pinsGet({})).count, 4)

    // The spec's own JSON form gives the same answer; sending both forms at once is refused.
    const json = await call('GET', `/pins?meta=${encodeURIComponent(JSON.stringify({ app_id: 'docs' }))}`)
    assert.equal(json.status, 200)
    assert.equal(json.body.count, 2)
    const mixed = await call('GET', `/pins?meta=${encodeURIComponent('{"app_id":"docs"}')}&meta%5Bkind%5D=report`)
    assert.equal(mixed.status, 400)
    validate('Failure', mixed.body)
    const twice = await call('GET', '/pins?meta%5Bapp_id%5D=docs&meta%5Bapp_id%5D=photos')
    assert.equal(twice.status, 400)
    assert.match(twice.body.error.details, /meta\[app_id\]" is given more than once/)
  })

  it('answers 400 in the Failure shape to a parameter the spec does not have, naming it', async () => {
    // The generated client sends only the spec's parameters; a middleware adds one, as a
    // misspelt or newer filter would reach the server.
    const misspelt = client.withPreMiddleware(async ({ url, init }) => ({ url: `${url}${url.includes('?') ? '&' : '?'}metadata=${encodeURIComponent('{"app_id":"docs"}')}`, init }))
    const refused = await failureOf(misspelt.pinsGet({ limit: 5 }))
    assert.equal(refused.status, 400)
    validate('Failure', refused.body)
    assert.equal(refused.body.error.reason, 'BAD_REQUEST')
    assert.match(refused.body.error.details, /unknown query parameter "metadata"/)
    assert.match(refused.body.error.details, /cid, name, match, status, before, after, limit, meta/)

    // Routes that take no query parameters refuse any.
    const { requestid } = (await client.pinsGet({})).results[0] ?? assert.fail('a pin from the test before')
    const withQuery = client.withPreMiddleware(async ({ url, init }) => ({ url: `${url}?verbose=1`, init }))
    const onGet = await failureOf(withQuery.pinsRequestidGet({ requestid }))
    assert.equal(onGet.status, 400)
    validate('Failure', onGet.body)
    assert.match(onGet.body.error.details, /unknown query parameter "verbose".*takes no query parameters/)
    const onDelete = await failureOf(withQuery.pinsRequestidDelete({ requestid }))
    assert.equal(onDelete.status, 400)
    assert.equal((await client.pinsRequestidGet({ requestid })).requestid, requestid, 'the refused delete removed nothing')
  })

  it('fails a pin of an unsupported hash function at once, naming it, with no retry', async () => {
    const blake2b256 = CID.createV1(raw.code, createDigest(0xb220, new Uint8Array(32).fill(7)))
    const added = await client.pinsPost({ pin: { cid: blake2b256.toString(), name: 'blake2b' } })
    // Settled on its first attempt: failed, never back in the queue "retrying after" it.
    const first = await waitForValue('the blake2b pin to settle or be retried', 30_000, async () => {
      const status = await client.pinsRequestidGet({ requestid: added.requestid })
      return status.status === Status.Failed || status.info?.status_details?.startsWith('retrying') === true ? status : undefined
    })
    assert.equal(first.status, Status.Failed, JSON.stringify(first.info))
    assert.match(first.info?.status_details ?? '', /^multihash function blake2b-256 \(0xb220\) is not supported/)
    const { rows } = await worker.db.query<{ attempts: number }>('SELECT attempts FROM pins WHERE id = $1', [added.requestid])
    assert.equal(rows[0]?.attempts, 1, 'one attempt, not PHAROS_PIN_MAX_ATTEMPTS')
  })

  it('shows info.progress (blocks, bytes, startedAt) while a pin is fetched, and while it is queued', async () => {
    const file = randomContent(4 * MiB)
    const root = await origin.addFile(file)
    const links = dagPb.decode(await collectBytes(origin.blockstore.get(root))).Links
    assert.ok(links.length >= 4, `a file of several leaves (${links.length})`)
    // The origin lacks one leaf for now: every other block arrives, and the pin waits on it.
    const missing = links.at(-1)?.Hash ?? assert.fail('a leaf')
    const missingBytes = await collectBytes(origin.blockstore.get(missing))
    await origin.blockstore.delete(missing)

    const fetching = await client.pinsPost({ pin: { cid: root.toString(), origins: origin.multiaddrs() } })
    const startedBefore = Date.now()
    // Concurrency 1: this one waits in the queue while the first waits on its missing leaf.
    const waiting = await client.pinsPost({ pin: { cid: CID.createV1(raw.code, await sha256.digest(randomContent(64))).toString() } })

    const progressOf = (status: PinStatus): { blocks: number, bytes: number, startedAt: string | null } => {
      assert.ok(status.info?.progress !== undefined, `info.progress on a ${status.status} pin: ${JSON.stringify(status.info)}`)
      return JSON.parse(status.info.progress) as { blocks: number, bytes: number, startedAt: string | null }
    }

    // Every block but the missing one arrives; the pin stays `pinning`, and its progress says how far it got.
    const seen = await waitForValue('progress on the pinning pin', 30_000, async () => {
      const status = await client.pinsRequestidGet({ requestid: fetching.requestid })
      assert.notEqual(status.status, Status.Failed, JSON.stringify(status.info))
      return status.status === Status.Pinning && progressOf(status).blocks >= links.length ? status : undefined
    })
    validate('PinStatus', await call('GET', `/pins/${fetching.requestid}`).then((answer) => answer.body))
    const progress = progressOf(seen)
    assert.equal(progress.blocks, links.length, 'the root and every leaf but the missing one')
    assert.ok(progress.bytes > 0 && progress.bytes < file.byteLength, `bytes so far: ${progress.bytes}`)
    assert.ok(progress.startedAt !== null && Math.abs(Date.parse(progress.startedAt) - startedBefore) < 60_000, `startedAt ${progress.startedAt}`)
    // It is read from the pin's row, so any worker of a fleet serves the same.
    const { rows } = await worker.db.query<{ blocks: number }>('SELECT progress_blocks::int AS blocks FROM pins WHERE id = $1', [fetching.requestid])
    assert.equal(rows[0]?.blocks, links.length)

    const queued = await client.pinsRequestidGet({ requestid: waiting.requestid })
    assert.equal(queued.status, Status.Queued)
    assert.deepEqual(progressOf(queued), { blocks: 0, bytes: 0, startedAt: null })
    // Lists carry it too.
    const listed = await client.pinsGet({ status: [Status.Pinning] })
    assert.equal(progressOf(listed.results[0] ?? assert.fail('the pinning pin is listed')).blocks, links.length)

    // The leaf turns up; the pin's next want for it is answered and the pin settles.
    await origin.blockstore.put(missing, missingBytes)
    const pinned = await settled(fetching.requestid)
    assert.equal(pinned.status, Status.Pinned)
    assert.equal(pinned.info?.progress, undefined, 'a settled pin shows what it holds, not progress')
  })
})
