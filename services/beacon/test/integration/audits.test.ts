import assert from 'node:assert/strict'
import { after, before, describe, it, mock } from 'node:test'
import { lpStream } from '@libp2p/utils'
import type { CID } from 'multiformats/cid'
import pg from 'pg'
import { openAuditReport } from '@pharos/protocol/audit/index.ts'
import { auditProtocolId } from '@pharos/protocol/audit/index.ts'
import type { AuditReport } from '@pharos/protocol/audit/index.ts'
import { createPharosPeer } from '@pharos/peer/pharos-peer.ts'
import type { PharosPeer } from '@pharos/peer/pharos-peer.ts'
import { generateKey } from '@pharos/peer/keys.ts'
import { UnverifiedReportError } from '../../src/audit/audit-store.ts'
import { blockCid } from '../../src/audit/auditor.ts'
import { challengeWorker } from '../../src/audit/challenger.ts'
import { collectBytes } from '../../src/storage/pg-blockstore.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { createTestDatabase, testFleet } from '@pharos/testing/databases.ts'
import { createContentPeer, httpClient, metricValue, randomContent, testConfig, testLogger, waitForPin } from '../helpers/storage.ts'
import type { ContentPeer, JsonBody } from '../helpers/storage.ts'
import { waitFor, waitForValue } from '@pharos/testing/wait.ts'

const TOKEN = 'audit-owner-token-0123456789'
const NETWORK = 'pharos'

/**
 * Storage audits on Postgres with real libp2p peers on loopback: a block corrupted or deleted
 * in Postgres is found by a round and repaired from the peer that holds it; reports verify
 * with the worker's peer ID (a tampered one does not) and are listed by GET /v1/audits;
 * challenges pass against a healthy worker and fail against one that lost a block; a
 * malformed challenge frame is counted and changes nothing; rounds run on schedule.
 */
describe('storage audits (Postgres, libp2p)', () => {
  const fleet = testFleet()
  let databaseUrl: string
  let worker: Worker
  let origin: ContentPeer
  let sdkPeer: PharosPeer | undefined
  const clients: ClientPeer[] = []
  const workers: Worker[] = []
  let fileCid: CID
  /** The pin's blocks as raw CIDs (blocks are keyed by multihash). */
  let held: CID[]
  let admin: pg.Client

  /** A plain libp2p peer connected to `target` (the first worker by default), to challenge it. */
  const client = async (target: Worker = worker): Promise<ClientPeer> => {
    const node = await createClientPeer()
    clients.push(node)
    await node.dial(target.node.getMultiaddrs())
    return node
  }
  const ownCopy = async (cid: CID): Promise<Uint8Array | undefined> => await origin.blockstore.has(cid) ? await collectBytes(origin.blockstore.get(cid)) : undefined
  const metrics = async (target: Worker): Promise<string> => await (await fetch(`${target.httpUrl}/metrics`)).text()
  /** What Postgres holds for a block, compared with the origin's copy (a word, so a failed assertion stays short). */
  const stored = async (cid: CID): Promise<'missing' | 'intact' | 'other bytes'> => {
    const { rows } = await admin.query<{ data: Buffer }>('SELECT data FROM blocks WHERE multihash = $1', [cid.multihash.bytes])
    const copy = await ownCopy(cid)
    if (rows[0] === undefined) return 'missing'
    return copy !== undefined && rows[0].data.equals(copy) ? 'intact' : 'other bytes'
  }
  /** Removes a block a pin holds, as a lost disk page would: behind the foreign key's back. */
  const loseBlock = async (cid: CID): Promise<void> => {
    await admin.query('BEGIN')
    await admin.query('SET LOCAL session_replication_role = replica')
    const { rowCount } = await admin.query('DELETE FROM blocks WHERE multihash = $1', [cid.multihash.bytes])
    await admin.query('COMMIT')
    assert.equal(rowCount, 1)
  }
  const startAuditWorker = async (env: Record<string, string>): Promise<Worker> => {
    const started = await startWorker(await testConfig(fleet({ DATABASE_URL: databaseUrl, PHAROS_PIN_TOKENS: `owner:${TOKEN}`, ...env })), testLogger())
    workers.push(started)
    return started
  }

  before(async () => {
    databaseUrl = await createTestDatabase('audits')
    worker = await startAuditWorker({
      // Rounds run on demand here, so each test knows what its round saw.
      PHAROS_AUDIT_INTERVAL_MS: '0',
      PHAROS_AUDIT_SAMPLE_SIZE: '1024',
      PHAROS_AUDIT_REPAIR_TIMEOUT_MS: '30000'
    })
    admin = new pg.Client({ connectionString: databaseUrl })
    await admin.connect()
    origin = await createContentPeer()
    // 2.5 MiB: a UnixFS root and three leaves (1 MiB chunks).
    fileCid = await origin.addFile(randomContent(2.5 * 1024 * 1024))
    const call = httpClient(worker.httpUrl, TOKEN)
    const added = await call('POST', '/pins', { cid: fileCid.toString(), origins: origin.multiaddrs() })
    assert.equal(added.status, 202, JSON.stringify(added.body))
    const pinned = await waitForPin(call, added.body.requestid)
    assert.equal(pinned.status, 'pinned', JSON.stringify(pinned))
    const { rows } = await admin.query<{ multihash: Buffer }>('SELECT multihash FROM pin_blocks WHERE pin_id = $1', [pinned.requestid])
    held = rows.map((row) => blockCid(new Uint8Array(row.multihash)))
    assert.ok(held.length >= 3, `the pin holds ${held.length} blocks`)
  })

  after(async () => {
    await sdkPeer?.stop()
    await Promise.all(clients.map(async (node) => { await node.stop() }))
    await origin?.stop()
    await admin?.end()
    for (const started of workers) await started.stop()
  })

  it('signs a report of a clean round that verifies with the worker\'s peer ID, and a tampered one does not', async () => {
    const round = await worker.audits.auditor.runRound()
    assert.ok(round.report !== undefined && round.statement !== undefined)
    assert.deepEqual(round.report.checked.map(String).sort(), held.map(String).sort())
    assert.deepEqual(round.report.failures, [])
    assert.deepEqual(round.report.repairs, [])

    const workerId = worker.node.peerId.toString()
    const opened = await openAuditReport(round.statement, workerId)
    assert.ok(opened.ok, opened.ok ? '' : opened.detail)
    assert.deepEqual(opened.report, round.report)
    // Any byte changed (here, inside the signed body) breaks the signature.
    const tampered = new Uint8Array(round.statement)
    const at = tampered.length - 80
    tampered[at] = (tampered[at] ?? 0) ^ 0x01
    const check = await openAuditReport(tampered, workerId)
    assert.equal(check.ok, false)
    // Another worker's key does not vouch for it.
    const other = await openAuditReport(round.statement, (await client()).peerId.toString())
    assert.equal(other.ok ? 'ok' : other.code, 'bad-signer')
  })

  it('passes a challenge from a peer that holds the blocks (the peer SDK too), and fails one after the worker lost a block', async () => {
    const challenger = await client()
    const signal = AbortSignal.timeout(20_000)
    const healthy = await challengeWorker(challenger, worker.node.peerId, held, ownCopy, { network: NETWORK, signal })
    assert.equal(healthy.verdict, 'passed', JSON.stringify(healthy.results))

    // The peer SDK, with the origin's blocks as its own store: the same verdict.
    const tcp = worker.node.getMultiaddrs().map(String).find((addr) => !addr.includes('/ws'))
    assert.ok(tcp !== undefined)
    sdkPeer = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [tcp], networkSize: 4, blockstore: origin.blockstore })
    await worker.accounts.add(sdkPeer.peerId.toString(), 'audit-test')
    await worker.accounts.refresh()
    await sdkPeer.start()
    const fromSdk = await sdkPeer.challenge(worker.node.peerId, held)
    assert.equal(fromSdk.verdict, 'passed')

    const lost = held[1]
    assert.ok(lost !== undefined)
    await loseBlock(lost)
    assert.equal(await stored(lost), 'missing')
    const failed = await challengeWorker(challenger, worker.node.peerId, held, ownCopy, { network: NETWORK, signal })
    assert.equal(failed.verdict, 'failed')
    assert.deepEqual(failed.results.map((result) => result.outcome), held.map((cid) => cid.equals(lost) ? 'missing' : 'proved'))
    assert.equal((await sdkPeer.challenge(worker.node.peerId.toString(), [lost])).verdict, 'failed')
    assert.equal(metricValue(await metrics(worker), 'pharos_audit_challenges_answered_total{outcome="answered"}'), 4)
  })

  it('finds the deleted block in a round, repairs it from the peer that has it, and publishes the report on the audit topic', async () => {
    const lost = held[1]
    assert.ok(lost !== undefined)
    assert.equal(await stored(lost), 'missing')
    const published: Uint8Array[] = []
    const peer = sdkPeer
    assert.ok(peer !== undefined)
    const unsubscribe = peer.libp2p.services.overlay.onDeliver((delivery) => { if (delivery.topic === 'audit') published.push(delivery.payload) })

    const round = await worker.audits.auditor.runRound()
    const report = round.report as AuditReport
    assert.deepEqual(report.failures.map(({ cid, reason }) => [cid.toString(), reason]), [[lost.toString(), 'missing']])
    assert.equal(report.repairs.length, 1)
    assert.equal(report.repairs[0]?.outcome, 'repaired', report.repairs[0]?.detail)
    assert.equal(await stored(lost), 'intact')

    // Peers on the audit topic receive the signed report and can check it themselves.
    const delivered = await waitForValue('the report on the audit topic', 20_000, async () => published.find((bytes) => Buffer.from(bytes).equals(Buffer.from(round.statement ?? []))))
    const opened = await openAuditReport(delivered, worker.node.peerId.toString())
    assert.ok(opened.ok)
    unsubscribe()

    const challenger = await client()
    const repaired = await challengeWorker(challenger, worker.node.peerId, held, ownCopy, { network: NETWORK, signal: AbortSignal.timeout(20_000) })
    assert.equal(repaired.verdict, 'passed')
  })

  it('finds a block corrupted in Postgres and repairs it; the bad bytes are never proved', async () => {
    const bad = held[2]
    assert.ok(bad !== undefined)
    await admin.query('UPDATE blocks SET data = $2 WHERE multihash = $1', [bad.multihash.bytes, Buffer.from('not the block')])
    assert.equal(await stored(bad), 'other bytes')
    const challenger = await client()
    const before = await challengeWorker(challenger, worker.node.peerId, [bad], ownCopy, { network: NETWORK, signal: AbortSignal.timeout(20_000) })
    assert.deepEqual(before.results.map((result) => result.outcome), ['missing'])

    const round = await worker.audits.auditor.runRound()
    const report = round.report as AuditReport
    assert.deepEqual(report.failures.map(({ cid, reason }) => [cid.toString(), reason]), [[bad.toString(), 'corrupt']])
    assert.equal(report.repairs[0]?.outcome, 'repaired', report.repairs[0]?.detail)
    assert.equal(await stored(bad), 'intact')
    const text = await metrics(worker)
    assert.equal(metricValue(text, 'pharos_audit_failures_total{reason="corrupt"}'), 1)
    assert.equal(metricValue(text, 'pharos_audit_failures_total{reason="missing"}'), 1)
    assert.equal(metricValue(text, 'pharos_audit_repairs_total{outcome="repaired"}'), 2)
    assert.equal(metricValue(text, 'pharos_audit_rounds_total{outcome="completed"}'), 3)
    assert.ok(metricValue(text, 'pharos_audit_blocks_checked_total') >= 12)
  })

  it('closes the stream of a malformed challenge, counts it, and answers the next one', async () => {
    const challenger = await client()
    for (const frame of [new Uint8Array([0xa1, 0x61, 0x74, 0x63, 0x62, 0x61, 0x64]), new Uint8Array(64 * 1024)]) {
      const stream = await challenger.dialProtocol(worker.node.peerId, auditProtocolId(NETWORK))
      const lp = lpStream(stream, { maxDataLength: 1024 })
      await lp.write(frame).catch(() => {})
      await assert.rejects(lp.read({ signal: AbortSignal.timeout(10_000) }))
    }
    await waitFor('both rejections counted', async () => metricValue(await metrics(worker), 'pharos_audit_challenges_answered_total{outcome="rejected"}') === 2)
    const next = await challengeWorker(challenger, worker.node.peerId, held, ownCopy, { network: NETWORK, signal: AbortSignal.timeout(20_000) })
    assert.equal(next.verdict, 'passed')
    assert.equal((await fetch(`${worker.httpUrl}/readyz`)).status, 200)
  })

  it('lists reports on GET /v1/audits without a token, with their signed bytes, paged and filtered; bad queries are 400', async () => {
    const list = async (query: string): Promise<{ status: number, body: JsonBody }> => {
      const response = await fetch(`${worker.httpUrl}/v1/audits${query}`)
      return { status: response.status, body: await response.json() }
    }
    const all = await list('')
    assert.equal(all.status, 200, JSON.stringify(all.body))
    assert.equal(all.body.reports.length, 3)
    const newest = all.body.reports[0]
    assert.equal(newest.worker, worker.node.peerId.toString())
    assert.deepEqual(newest.failures, [{ cid: held[2]?.toString(), reason: 'corrupt' }])
    assert.equal(newest.repairs[0].outcome, 'repaired')
    const opened = await openAuditReport(Buffer.from(newest.statement, 'base64'), newest.worker)
    assert.ok(opened.ok)
    assert.deepEqual(opened.report.checked.map(String), newest.checked)

    const first = await list('?limit=2')
    assert.equal(first.body.reports.length, 2)
    assert.equal(typeof first.body.next, 'number')
    const second = await list(`?limit=2&before=${first.body.next as number}`)
    assert.equal(second.body.reports.length, 1)
    assert.equal(second.body.next, undefined)
    assert.deepEqual([...first.body.reports, ...second.body.reports].map((report: JsonBody) => report.id), all.body.reports.map((report: JsonBody) => report.id))

    assert.equal((await list(`?worker=${worker.node.peerId.toString()}&since=2000-01-01T00:00:00Z`)).body.reports.length, 3)
    assert.equal((await list(`?worker=${(await client()).peerId.toString()}`)).body.reports.length, 0)
    assert.equal((await list(`?since=${new Date(Date.now() + 60_000).toISOString()}`)).body.reports.length, 0)

    // Each report was verified once, when stored: reading them, however often, verifies none.
    const verify = mock.method(globalThis.crypto.subtle, 'verify')
    try {
      for (let i = 0; i < 3; i++) assert.equal((await list('?limit=100')).body.reports.length, 3)
      assert.equal(verify.mock.callCount(), 0, 'no signature verified by GET /v1/audits')
    } finally {
      verify.mock.restore()
    }
    // What makes that safe: a report that does not verify is never stored.
    const statement = Uint8Array.from(Buffer.from(newest.statement, 'base64'))
    statement[statement.length - 1] = (statement[statement.length - 1] ?? 0) ^ 1
    await assert.rejects(worker.audits.store.insert({
      reportCid: 'bafy-tampered', worker: newest.worker, roundAt: new Date(), sampleSize: 1, checked: 1, failures: 0, repaired: 0, repairFailures: 0, statement
    }), UnverifiedReportError)
    assert.equal((await list('?limit=100')).body.reports.length, 3)

    for (const bad of ['?limit=0', '?limit=101', '?before=abc', '?worker=not-a-peer', '?since=yesterday']) {
      const response = await list(bad)
      assert.equal(response.status, 400, `${bad}: ${JSON.stringify(response.body)}`)
      assert.equal(response.body.error.reason, 'BAD_REQUEST')
    }
  })

  it('runs rounds on schedule on a second worker of the fleet, and rate-limits challenges per peer', async () => {
    const second = await startAuditWorker({
      PHAROS_AUDIT_INTERVAL_MS: '200',
      PHAROS_AUDIT_SAMPLE_SIZE: '2',
      PHAROS_AUDIT_CHALLENGES_PER_MINUTE: '2',
      PHAROS_PIN_CONCURRENCY: '0'
    })
    const secondId = second.node.peerId.toString()
    const reports = await waitForValue('two scheduled rounds of the second worker', 20_000, async () => {
      const body = await (await fetch(`${second.httpUrl}/v1/audits?worker=${secondId}`)).json() as JsonBody
      return body.reports.length >= 2 ? body.reports as JsonBody[] : undefined
    })
    for (const report of reports) {
      assert.equal(report.checked.length, 2)
      assert.ok(report.checked.every((cid: string) => held.some((heldCid) => heldCid.toString() === cid)))
      assert.ok((await openAuditReport(Buffer.from(report.statement, 'base64'), secondId)).ok)
    }

    const challenger = await client(second)
    const outcomes: string[] = []
    for (let i = 0; i < 3; i++) {
      outcomes.push((await challengeWorker(challenger, second.node.peerId, held, ownCopy, { network: NETWORK, signal: AbortSignal.timeout(20_000) })).verdict)
    }
    assert.deepEqual(outcomes, ['passed', 'passed', 'refused'])
    // Another peer has a window of its own.
    const fresh = await challengeWorker(await client(second), second.node.peerId, held, ownCopy, { network: NETWORK, signal: AbortSignal.timeout(20_000) })
    assert.equal(fresh.verdict, 'passed')
    assert.equal(metricValue(await metrics(second), 'pharos_audit_challenges_answered_total{outcome="rate-limited"}'), 1)
  })
})
