import { Counter, Gauge, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'
import { MESSAGE_TYPES } from '@pharos/protocol/overlay/index.ts'
import { NEIGHBOUR_OFFENCES } from '@pharos/net/overlay/overlay-driver.ts'
import type { OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'

/**
 * Feeds a prom-client Counter from a running total kept elsewhere: on each scrape it adds
 * what the total grew by since the last scrape.
 */
class TotalsMirror {
  private readonly last = new Map<string, number>()

  sync (counter: Counter<string>, labels: Record<string, string>, total: number): void {
    const key = JSON.stringify(labels)
    const previous = this.last.get(key) ?? 0
    if (total > previous) counter.inc(labels, total - previous)
    else if (!this.last.has(key)) counter.inc(labels, 0)
    this.last.set(key, total)
  }
}

/**
 * Overlay metrics, read from the driver's and topics' own counters on scrape: the state
 * machines count, nothing here sits on the message path. Topic labels are the configured
 * short names and message types the protocol's, both closed sets.
 */
export function createOverlayMetrics (registry: Registry, overlay: OverlayDriver, limits?: Pick<LimitMetrics, 'mirror'>): void {
  const registers = [registry]
  limits?.mirror('overlaySendQueueFrames', () => overlay.driverCounters().queueOverflows)
  limits?.mirror('overlaySendQueueBytes', () => overlay.driverCounters().queueByteOverflows)
  limits?.mirror('overlayDataFramesPerSecond', () => overlay.driverCounters().neighbours.dataFramesRefused)
  limits?.mirror('overlayControlFramesPerSecond', () => overlay.driverCounters().neighbours.controlFramesRefused)
  limits?.mirror('overlayPassiveSharePercent', () => Object.values(overlay.topicCounters()).reduce((sum, counters) => sum + counters.membership.passiveShareReplacements, 0))
  limits?.mirror('overlayValidationsInFlight', () => overlay.driverCounters().validationOverflows)
  limits?.mirror('overlayValidationTimeoutMs', () => overlay.driverCounters().validationTimeouts)
  limits?.mirror('overlayMessageCacheBytes', () => Object.values(overlay.topicCounters()).reduce((sum, counters) => sum + counters.dissemination.cacheEvictions, 0))
  const mirror = new TotalsMirror()
  const ihaveBatches = new Map<string, number>()

  new Gauge({
    name: 'pharos_overlay_view_size',
    help: 'HyParView view sizes (active, passive, active capacity) and Plumtree eager/lazy set sizes, per topic',
    labelNames: ['topic', 'view'] as const,
    registers,
    collect () {
      for (const [topic, snapshot] of Object.entries(overlay.snapshot())) {
        this.set({ topic, view: 'active' }, snapshot.active.length)
        this.set({ topic, view: 'passive' }, snapshot.passive.length)
        this.set({ topic, view: 'active_capacity' }, snapshot.activeCapacity)
        this.set({ topic, view: 'eager' }, snapshot.eager.length)
        this.set({ topic, view: 'lazy' }, snapshot.lazy.length)
      }
    }
  })

  const messages: Counter<'topic' | 'direction' | 'type'> = new Counter({
    name: 'pharos_overlay_messages_total',
    help: 'Overlay messages sent and received, by topic, direction and message type',
    labelNames: ['topic', 'direction', 'type'] as const,
    registers,
    collect () {
      for (const [topic, counters] of Object.entries(overlay.topicCounters())) {
        for (const type of MESSAGE_TYPES) {
          mirror.sync(messages, { topic, direction: 'sent', type }, counters.sent[type])
          mirror.sync(messages, { topic, direction: 'received', type }, counters.received[type])
        }
      }
    }
  })

  const events: Counter<'topic' | 'event'> = new Counter({
    name: 'pharos_overlay_events_total',
    help: 'Plumtree and HyParView events per topic: deliveries, duplicates, abandoned grafts, tree swaps, link failures, evictions, bridges asked and taken (a spare slot above a full view, docs/overlay.md), cache evictions (payloads dropped by the byte bound), congestions, peers named to us that are not members (passive_not_member), passive entries that replaced an earlier one of the same neighbour, which had its share (passive_share_replacement), copies identical to a payload already rejected, rejected again without a second validation (rejected_copy) (grafts and prunes are message types of pharos_overlay_messages_total)',
    labelNames: ['topic', 'event'] as const,
    registers,
    collect () {
      for (const [topic, counters] of Object.entries(overlay.topicCounters())) {
        const d = counters.dissemination
        const m = counters.membership
        mirror.sync(events, { topic, event: 'delivered' }, d.delivered)
        mirror.sync(events, { topic, event: 'duplicate' }, d.duplicates)
        mirror.sync(events, { topic, event: 'graft_abandoned' }, d.graftsAbandoned)
        mirror.sync(events, { topic, event: 'tree_swap' }, d.treeSwaps)
        mirror.sync(events, { topic, event: 'link_failure' }, m.linkFailures)
        mirror.sync(events, { topic, event: 'eviction' }, m.evictions)
        mirror.sync(events, { topic, event: 'bridge_asked' }, m.bridgesAsked)
        mirror.sync(events, { topic, event: 'bridge_taken' }, m.bridgesTaken)
        mirror.sync(events, { topic, event: 'cache_eviction' }, d.cacheEvictions)
        mirror.sync(events, { topic, event: 'congestion' }, d.congestions)
        mirror.sync(events, { topic, event: 'passive_not_member' }, m.nonMembers)
        mirror.sync(events, { topic, event: 'passive_share_replacement' }, m.passiveShareReplacements)
        mirror.sync(events, { topic, event: 'rejected_copy' }, d.rejectedCopies)
      }
    }
  })

  // IHAVE batch sizes: the topic keeps count, total entries and max; the histogram gets
  // each scrape interval's mean batch size once per batch sent in it.
  const ihaveBatch = new Histogram({
    name: 'pharos_overlay_ihave_batch_size',
    help: 'Message IDs per IHAVE batch (interval means), per topic',
    labelNames: ['topic'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers
  })
  const ihaveEntries = new Map<string, number>()
  new Gauge({
    name: 'pharos_overlay_ihave_batch_max',
    help: 'Largest IHAVE batch sent so far, per topic',
    labelNames: ['topic'] as const,
    registers,
    collect () {
      for (const [topic, counters] of Object.entries(overlay.topicCounters())) {
        const batches = counters.ihaveBatches
        const newBatches = batches.count - (ihaveBatches.get(topic) ?? 0)
        const newEntries = batches.entries - (ihaveEntries.get(topic) ?? 0)
        for (let i = 0; i < Math.min(newBatches, 10_000); i++) ihaveBatch.observe({ topic }, newEntries / newBatches)
        ihaveBatches.set(topic, batches.count)
        ihaveEntries.set(topic, batches.entries)
        this.set({ topic }, batches.max)
      }
    }
  })

  new Gauge({
    name: 'pharos_overlay_send_queue_bytes',
    help: 'Bytes queued to overlay neighbours now, over all links (each link is bounded by PHAROS_OVERLAY_SEND_QUEUE_BYTES)',
    registers,
    collect () { this.set(overlay.queuedBytes()) }
  })
  new Gauge({
    name: 'pharos_overlay_send_queue_peak_bytes',
    help: 'The most bytes one overlay link\'s send queue has held since start',
    registers,
    collect () { this.set(overlay.driverCounters().sendQueuePeakBytes) }
  })

  const wire: Counter<'reason'> = new Counter({
    name: 'pharos_overlay_frames_rejected_total',
    help: 'Overlay frames rejected (their stream closed), by reason',
    labelNames: ['reason'] as const,
    registers,
    collect () {
      for (const [reason, total] of Object.entries(overlay.driverCounters().framesRejected)) mirror.sync(wire, { reason }, total)
    }
  })

  const driver: Counter<'event'> = new Counter({
    name: 'pharos_overlay_driver_events_total',
    help: 'Overlay driver events: refusals sent and received, send-queue overflows (frames, bytes), queue congestions (a neighbour made lazy), neighbours shunned (bad message ID, queue over its bound, or score below the threshold: neighbour_score_drop counts those), link failures, address lookups sent, skipped (no address found recently) and answered (per peer asked about), drain notices sent, received and refused (from a node that is not a live fleet worker), connections the overlay dialled and closed again once nothing used them, gossip validations by verdict (validated_accept, validated_reject, validated_ignore) and the ones ignored unjudged (validation_overflow, validation_timeout, validation_error, unvalidated_topic); a rejected message costs its sender pharos_overlay_neighbour_offences_total{offence="invalid-payload"}',
    labelNames: ['event'] as const,
    registers,
    collect () {
      const counters = overlay.driverCounters()
      for (const [reason, total] of Object.entries(counters.refusalsSent)) mirror.sync(driver, { event: `refused_${reason}` }, total)
      mirror.sync(driver, { event: 'refusal_received' }, counters.refusalsReceived)
      mirror.sync(driver, { event: 'queue_overflow' }, counters.queueOverflows)
      mirror.sync(driver, { event: 'queue_byte_overflow' }, counters.queueByteOverflows)
      mirror.sync(driver, { event: 'queue_congestion' }, counters.queueCongestions)
      mirror.sync(driver, { event: 'neighbour_shunned' }, counters.neighboursShunned)
      mirror.sync(driver, { event: 'neighbour_score_drop' }, counters.neighbours.scoreDrops)
      mirror.sync(driver, { event: 'link_failure' }, counters.linkFailures)
      mirror.sync(driver, { event: 'address_lookup' }, counters.addressLookups)
      mirror.sync(driver, { event: 'address_lookup_skipped' }, counters.addressLookupsSkipped)
      mirror.sync(driver, { event: 'address_lookup_answered' }, counters.addressLookupsAnswered)
      mirror.sync(driver, { event: 'drain_notice_sent' }, counters.drainNoticesSent)
      mirror.sync(driver, { event: 'drain_notice_received' }, counters.drainNoticesReceived)
      mirror.sync(driver, { event: 'drain_notice_refused' }, counters.drainNoticesRefused)
      mirror.sync(driver, { event: 'connection_opened' }, counters.connectionsOpened)
      mirror.sync(driver, { event: 'connection_released' }, counters.connectionsReleased)
      for (const [verdict, total] of Object.entries(counters.validations)) mirror.sync(driver, { event: `validated_${verdict}` }, total)
      mirror.sync(driver, { event: 'validation_overflow' }, counters.validationOverflows)
      mirror.sync(driver, { event: 'validation_timeout' }, counters.validationTimeouts)
      mirror.sync(driver, { event: 'validation_error' }, counters.validationErrors)
      mirror.sync(driver, { event: 'unvalidated_topic' }, counters.unvalidatedTopic)
    }
  })

  const offences: Counter<'offence'> = new Counter({
    name: 'pharos_overlay_neighbour_offences_total',
    help: 'Offences that cost an overlay neighbour score (docs/overlay-driver.md "Budgets and scores"): invalid-payload (the application rejected its payload), unsolicited-graft, ihave-flood, control-flood and data-flood (frames over its buckets; those are also pharos_limit_blocked_total{limit="PHAROS_OVERLAY_CONTROL_FRAMES_PER_SECOND"|"PHAROS_OVERLAY_DATA_FRAMES_PER_SECOND"})',
    labelNames: ['offence'] as const,
    registers,
    collect () {
      const counted = overlay.driverCounters().neighbours.offences
      for (const offence of NEIGHBOUR_OFFENCES) mirror.sync(offences, { offence }, counted[offence])
    }
  })

  new Gauge({
    name: 'pharos_overlay_connections_held',
    help: 'Connections open now that the overlay dialled itself (each closed once unused for the grace period; connections peers opened to us are theirs to close)',
    registers,
    collect () { this.set(overlay.heldConnections()) }
  })
}
