/**
 * The ingest queue and the fleet claims stand on their own (log-service.ts composes them):
 * the queue refuses past its bound and holds a task through a storage outage; two workers'
 * claims store each message once, and a message whose claimer never finished is taken over.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AcceptedPayloads } from '@pharos/net/overlay/gossip-validators.ts'
import { FleetClaims } from '../../src/logs/fleet-claims.ts'
import type { CheckedEnvelope, FleetGossip } from '../../src/logs/fleet-claims.ts'
import { IngestQueue } from '../../src/logs/ingest-queue.ts'
import type { IngestResult } from '../../src/logs/log-ingest.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

const log = createLogger('silent')

/** Counts what a metric was asked to count, by label set. */
function counter (): { inc: (labels?: Record<string, string> | number, by?: number) => void, total: () => number } {
  let total = 0
  return {
    inc: (labels, by) => { total += typeof labels === 'number' ? labels : by ?? 1 },
    total: () => total
  }
}

describe('IngestQueue', () => {
  it('refuses what is past its bound, counting each entry as overloaded, and takes nothing while closed', async () => {
    const entries = counter()
    const queue = new IngestQueue(log, { entries } as never)
    assert.equal(queue.offer(async () => {}), false, 'closed: nothing is taken')
    queue.open()
    let release!: () => void
    const held = new Promise<void>((resolve) => { release = resolve })
    // 32 tasks run; the rest wait, up to 10,000 entries.
    for (let i = 0; i < 32; i++) assert.ok(queue.offer(async () => { await held }))
    assert.ok(queue.offer(async () => { await held }, 10_000))
    assert.equal(queue.offer(async () => {}, 3), false)
    assert.equal(entries.total(), 3, 'each refused entry is counted')
    release()
    await queue.close()
  })

  it('holds a task while storage is unreachable and runs it once storage answers', async () => {
    const queue = new IngestQueue(log, { entries: counter() } as never)
    queue.open()
    let tries = 0
    const result = await queue.untilStorageAnswers(async () => {
      tries++
      if (tries < 3) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
      return 'stored'
    })
    assert.equal(result, 'stored')
    assert.equal(tries, 3)
    await assert.rejects(queue.untilStorageAnswers(async () => { throw new Error('a bug, not an outage') }), /a bug/)
    await queue.close()
  })
})

/** The fleet's seen-set, in memory, shared by the workers of one test. */
function sharedFleet (): FleetGossip & { relayed: string[], lapse: (id: string) => void } {
  const claims = new Map<string, 'claimed' | 'done'>()
  const relayed: string[] = []
  const claim = async (id: string): Promise<'claimed' | 'seen'> => {
    if (claims.has(id)) return 'seen'
    claims.set(id, 'claimed')
    return 'claimed'
  }
  return {
    relayed,
    /** A claim whose worker never completed it lapses (Redis: its TTL). */
    lapse: (id) => { if (claims.get(id) === 'claimed') claims.delete(id) },
    claim,
    claimMany: async (ids) => await Promise.all(ids.map(claim)),
    complete: (id) => { claims.set(id, 'done') },
    states: async (ids) => new Map(ids.map((id) => [id, claims.get(id) ?? 'absent'])),
    relay: (_topic, id) => { relayed.push(id) }
  }
}

async function message (i: number): Promise<{ id: string, payload: Uint8Array }> {
  const payload = new TextEncoder().encode(`entry ${i}`)
  return { id: CID.createV1(raw.code, await sha256.digest(payload)).toString(), payload }
}

function worker (fleet: FleetGossip, stored: string[], options: { failStorage?: boolean } = {}): { claims: FleetClaims, queue: IngestQueue } {
  const queue = new IngestQueue(log, { entries: counter() } as never)
  queue.open()
  const claims = new FleetClaims({
    fleet,
    queue,
    ingestEnvelopes: async (items) => {
      if (options.failStorage === true) throw new Error('this worker dies before it stores')
      return await Promise.all(items.map(async ({ payload }): Promise<IngestResult> => {
        const cid = CID.createV1(raw.code, await sha256.digest(payload))
        stored.push(cid.toString())
        // What claims act on is the result and the CID (the outcome is ingest's business).
        return { result: 'duplicate', cid }
      }))
    },
    checked: new AcceptedPayloads<CheckedEnvelope>(100),
    handlers: new Map(),
    broadcast: () => {},
    claimTtlMs: 50,
    metrics: { deferred: counter(), takenOver: counter() } as never,
    log
  })
  return { claims, queue }
}

describe('FleetClaims', () => {
  it('stores each message once across two workers that both received it, and settles it after storing', async () => {
    const fleet = sharedFleet()
    const stored: string[] = []
    const a = worker(fleet, stored)
    const b = worker(fleet, stored)
    const messages = await Promise.all(Array.from({ length: 100 }, async (_, i) => await message(i)))
    for (const { id, payload } of messages) {
      a.claims.dispatch('content', id, payload, 'peer-a')
      b.claims.dispatch('content', id, payload, 'peer-b')
    }
    await waitFor('every message stored', () => stored.length >= messages.length)
    await a.queue.close()
    await b.queue.close()
    assert.equal(stored.length, messages.length)
    assert.equal(new Set(stored).size, messages.length, 'no message stored twice')
    assert.equal(new Set(fleet.relayed).size, messages.length, 'each relayed once stored')
    assert.ok([...(await fleet.states(messages.map((m) => m.id))).values()].every((state) => state === 'done'))
  })

  it('takes over a message whose claimer never finished, once its claim lapsed', async () => {
    const fleet = sharedFleet()
    const stored: string[] = []
    const dead = worker(fleet, stored, { failStorage: true })
    const alive = worker(fleet, stored)
    const { id, payload } = await message(1)
    dead.claims.dispatch('content', id, payload, 'peer')
    await waitFor('the first worker claimed it', async () => (await fleet.states([id])).get(id) === 'claimed')
    alive.claims.dispatch('content', id, payload, 'peer')
    const pastClaimTtl = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 80)) }
    await pastClaimTtl()
    await alive.claims.takeOver()
    assert.deepEqual(stored, [], 'still claimed by the first worker: left to it')
    fleet.lapse(id)
    await pastClaimTtl()
    await alive.claims.takeOver()
    await waitFor('taken over and stored', () => stored.length === 1)
    assert.deepEqual(stored, [id])
    await dead.queue.close()
    await alive.queue.close()
  })
})
