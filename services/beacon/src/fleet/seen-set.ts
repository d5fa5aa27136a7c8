import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'
import { seenShardOf } from './keys.ts'
import type { FleetKeys } from './keys.ts'
import { batchReplies, firstBatchError } from './redis-connection.ts'
import type { FleetRedis } from './redis-connection.ts'
import { TtlLru } from './ttl-lru.ts'

/** `claimed`: handle the message (verify, store, pin). `seen`: some worker already has it. */
export type ClaimResult = 'claimed' | 'seen'

/** A message ID's fleet-wide state: handled, being handled (claim held), or unknown. */
export type SeenState = 'done' | 'claimed' | 'absent'

/**
 * The fleet-wide set of message IDs seen (DESIGN.md §6): a message is verified, stored and
 * pinned by one worker however many receive it. Not the real guarantee: Postgres unique
 * keys are, so a claim answered wrongly (Redis down) costs duplicate work, never duplicate
 * rows.
 */
export interface SeenSet {
  /**
   * Claims a message for this worker: `claimed` means handle it, then call `complete`;
   * `seen` means another worker (or this one, earlier) has it. When Redis is down or fails
   * the answer is `claimed`: the worker handles it locally.
   */
  claim: (messageId: string) => Promise<ClaimResult>
  /**
   * `claim` for many IDs at once, answered in the same order: the same per-ID rules, sent
   * to Redis together (one pipeline per seen shard, sent at once) rather than one by one.
   * An ID listed twice is claimed once (the second answers `seen`).
   */
  claimMany: (messageIds: readonly string[]) => Promise<ClaimResult[]>
  /** Marks a message handled, for the seen TTL (other workers' claims then answer `seen`). */
  complete: (messageId: string) => Promise<void>
  /**
   * The fleet-wide state of each ID, e.g. to see whether a claim that answered `seen` was
   * completed or still only claimed (its worker may have died). `absent` when Redis is down.
   */
  states: (messageIds: readonly string[]) => Promise<Map<string, SeenState>>
}

export interface RedisSeenSetInit {
  redis: FleetRedis
  keys: FleetKeys
  /** This worker's peer ID: the value of the claims it holds. */
  workerId: string
  /** How long a completed ID stays seen (PHAROS_SEEN_TTL_MS). */
  seenTtlMs: number
  /** How long a claim holds without `complete` (PHAROS_SEEN_CLAIM_TTL_MS). */
  claimTtlMs: number
  /**
   * Commands wait at most this long to be sent together (guess: 2 ms adds little to a
   * message's path and gathers a burst into one round trip per shard).
   * @default 2
   */
  batchWindowMs?: number
  /**
   * A batch this large is sent at once, without waiting for the window (guess).
   * @default 256
   */
  maxBatch?: number
  /**
   * IDs this worker claimed or completed, remembered here so it never asks Redis about
   * its own again (guess: a few minutes of a busy worker's messages).
   * @default 10000
   */
  ownCacheSize?: number
  /**
   * A claim sent to Redis whose reply was lost (command timeout, connection dropped) is
   * asked again once Redis answers, for at most this long, before the worker handles the
   * message locally. Guessing `claimed` at once is what made two workers both claim a
   * message under load (docs/fleet.md, "Claims under load"). Guess: the reconnect backoff's
   * cap, so a connection dropped as hung gets at least one reconnect attempt.
   * @default 2000
   */
  lostClaimPatienceMs?: number
  metrics?: Pick<FleetMetricsHooks, 'seenClaims'>
}

/** Round trips and commands sent, so tests (and operators) can see batching work. */
export interface SeenSetStats {
  /** Pipelines sent: one per shard per batch. */
  pipelines: number
  commands: number
}

type Operation =
  | { kind: 'claim', messageId: string }
  | { kind: 'complete', messageId: string }
  | { kind: 'get', messageId: string }

/** `sent`: the command went to Redis, so it may have been carried out though no reply came. */
type Reply = { ok: true, value: unknown } | { ok: false, sent: boolean }

interface Pending {
  operation: Operation
  shard: number
  settle: (reply: Reply) => void
}

const DONE = 'done'
const DEFAULT_LOST_CLAIM_PATIENCE_MS = 2000

/**
 * The seen set in Redis: one STRING per message ID with a TTL, `SET NX PX` to claim.
 * Calls within a short window go out together, one pipeline per shard (hash tag
 * `{seen:<n>}`), so a burst of messages costs a few round trips, and on a Cluster every
 * pipeline stays within one slot.
 */
export class RedisSeenSet implements SeenSet {
  readonly stats: SeenSetStats = { pipelines: 0, commands: 0 }
  private readonly init: RedisSeenSetInit
  private readonly batchWindowMs: number
  private readonly maxBatch: number
  private readonly lostClaimPatienceMs: number
  /** This worker's own IDs: `claimed` (held, or handled locally while Redis was down) or `done`. */
  private readonly own: TtlLru<'claimed' | 'done'>
  /** Claims on their way to Redis, so a second claim of the same ID waits for the first. */
  private readonly claiming = new Map<string, Promise<ClaimResult>>()
  private queue: Pending[] = []
  private timer: NodeJS.Timeout | undefined

  constructor (init: RedisSeenSetInit) {
    this.init = init
    this.batchWindowMs = init.batchWindowMs ?? 2
    this.maxBatch = init.maxBatch ?? 256
    this.lostClaimPatienceMs = init.lostClaimPatienceMs ?? DEFAULT_LOST_CLAIM_PATIENCE_MS
    this.own = new TtlLru(init.ownCacheSize ?? 10_000)
  }

  async claim (messageId: string): Promise<ClaimResult> {
    if (this.own.get(messageId) !== undefined) return this.counted('seen')
    const earlier = this.claiming.get(messageId)
    if (earlier !== undefined) {
      await earlier
      return this.counted('seen')
    }
    const claiming = this.claimInRedis(messageId).finally(() => { this.claiming.delete(messageId) })
    this.claiming.set(messageId, claiming)
    return await claiming
  }

  async claimMany (messageIds: readonly string[]): Promise<ClaimResult[]> {
    // Each claim queues its command before its first await, so they are all in the queue
    // here: send them now, together, rather than after the batch window.
    const claims = messageIds.map(async (messageId) => await this.claim(messageId))
    this.flush()
    return await Promise.all(claims)
  }

  async complete (messageId: string): Promise<void> {
    this.own.set(messageId, 'done', this.init.seenTtlMs)
    // Down: only this worker knows. Others that claim it later find no key, take it and
    // meet the stored rows in Postgres.
    if (!this.init.redis.isUp()) return
    await this.send({ kind: 'complete', messageId })
  }

  async states (messageIds: readonly string[]): Promise<Map<string, SeenState>> {
    const unique = [...new Set(messageIds)]
    const states = new Map<string, SeenState>(unique.map((id) => [id, 'absent']))
    if (!this.init.redis.isUp()) return states
    const replies = await Promise.all(unique.map(async (messageId) => await this.send({ kind: 'get', messageId })))
    unique.forEach((id, i) => {
      const reply = replies[i]
      if (reply?.ok === true && typeof reply.value === 'string') states.set(id, reply.value === DONE ? 'done' : 'claimed')
    })
    return states
  }

  /** Sends what is queued now, without waiting for the window (used on stop). */
  flush (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    const batch = this.queue
    this.queue = []
    if (batch.length === 0) return
    if (!this.init.redis.isUp()) {
      for (const pending of batch) pending.settle({ ok: false, sent: false })
      return
    }
    const byShard = new Map<number, Pending[]>()
    for (const pending of batch) {
      const shard = byShard.get(pending.shard)
      if (shard === undefined) byShard.set(pending.shard, [pending])
      else shard.push(pending)
    }
    for (const [shard, pendings] of byShard) void this.sendShard(shard, pendings)
  }

  private async claimInRedis (messageId: string): Promise<ClaimResult> {
    const { redis, workerId } = this.init
    let reply: Reply = redis.isUp() ? await this.send({ kind: 'claim', messageId }) : { ok: false, sent: false }
    // Sent but unanswered: Redis may have set the key for us, or answered that another
    // worker holds it. Either way it is not ours to guess: ask again while there is time
    // (the claim is idempotent for this worker, so a first attempt that landed reads as ours).
    const deadline = Date.now() + this.lostClaimPatienceMs
    while (!reply.ok && reply.sent && Date.now() < deadline) {
      if (!await redis.waitUntilUp(deadline - Date.now())) break
      reply = await this.send({ kind: 'claim', messageId })
    }
    if (!reply.ok) {
      // Redis down or failing: handle it here, and remember it, so a copy arriving from
      // another peer meanwhile is not handled twice by this worker.
      this.own.set(messageId, 'claimed', this.init.claimTtlMs)
      this.init.metrics?.seenClaims.inc({ result: 'local' })
      return 'claimed'
    }
    // SET … NX GET answers the value it found: none (the key is now ours), ours (an earlier
    // attempt whose reply was lost had set it), or another worker's claim or `done`.
    if (reply.value !== null && reply.value !== workerId) return this.counted('seen')
    this.own.set(messageId, 'claimed', this.init.claimTtlMs)
    return this.counted('claimed')
  }

  private counted (result: ClaimResult): ClaimResult {
    this.init.metrics?.seenClaims.inc({ result })
    return result
  }

  private async send (operation: Operation): Promise<Reply> {
    return await new Promise<Reply>((resolve) => {
      this.queue.push({ operation, shard: seenShardOf(operation.messageId), settle: resolve })
      if (this.queue.length >= this.maxBatch) this.flush()
      else this.timer ??= setTimeout(() => { this.flush() }, this.batchWindowMs)
    })
  }

  private async sendShard (shard: number, pendings: Pending[]): Promise<void> {
    const { keys, workerId, seenTtlMs, claimTtlMs, redis } = this.init
    this.stats.pipelines++
    this.stats.commands += pendings.length
    const result = await redis.command('seen', async (client) => {
      const pipeline = client.pipeline()
      for (const { operation } of pendings) {
        const key = keys.seen(shard, operation.messageId)
        switch (operation.kind) {
          // GET (Redis ≥ 7.0 with NX): the reply says whose the key was, so asking again
          // after a lost reply cannot mistake this worker's own claim for another's.
          case 'claim': pipeline.set(key, workerId, 'PX', claimTtlMs, 'NX', 'GET'); break
          case 'complete': pipeline.set(key, DONE, 'PX', seenTtlMs); break
          case 'get': pipeline.get(key); break
        }
      }
      return batchReplies(await pipeline.exec())
    })
    if (!result.ok) {
      for (const pending of pendings) pending.settle({ ok: false, sent: true })
      return
    }
    const failure = firstBatchError(result.value)
    if (failure !== undefined) redis.failed('seen', failure)
    pendings.forEach((pending, i) => {
      const [err, value] = result.value[i] ?? [new Error('no reply'), null]
      pending.settle(err === null ? { ok: true, value } : { ok: false, sent: true })
    })
  }
}
