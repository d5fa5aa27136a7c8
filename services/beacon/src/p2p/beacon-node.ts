import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { autoNAT } from '@libp2p/autonat'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { createLibp2p } from 'libp2p'
import type { Config, ConfigKey } from '../config/schema.ts'
import type { Logger } from '../logging/logger.ts'
import { pinoComponentLogger } from '../logging/libp2p-logger.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import type { NetworkMetrics } from './network-metrics.ts'
import { listenerErrorReporter, withListenerErrors } from './accept-errors.ts'
import { beaconConnectionGater } from './connection-gater.ts'
import { withInboundAdmission } from './inbound-admission.ts'
import type { InboundAdmission, InboundAdmissionLimits } from './inbound-admission.ts'
import type { DialPolicy } from './dial-policy.ts'
import { flattenComponentValues, transportOf } from './multiaddr-parts.ts'
import type { RelayReservationPolicy } from './relay-reservation-policy.ts'
import { overlay } from '@pharos/net/overlay/overlay-driver.ts'
import type { AdmitDecision, DrainTrust, OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import { OVERLAY_TOPICS } from '@pharos/net/overlay/topics.ts'
import type { CircuitRelayService } from '@libp2p/circuit-relay-v2'
import type { Ed25519PrivateKey, Libp2p, Metrics, PeerId } from '@libp2p/interface'
import type { PrometheusMetricsComponents } from '@libp2p/prometheus-metrics'
import type { Registry } from 'prom-client'

export type BeaconServices = {
  identify: unknown
  ping: unknown
  autoNAT: unknown
  relay: CircuitRelayService
  overlay: OverlayDriver
}

export type BeaconNode = Libp2p<BeaconServices>

export interface BeaconNodeDeps {
  config: Config
  privateKey: Ed25519PrivateKey
  log: Logger
  registry: Registry
  metrics: NetworkMetrics
  /** Who may join the overlay through this worker (registered accounts). */
  admit: (peer: PeerId) => AdmitDecision
  /** N at start: the number of registered accounts. */
  networkSize: number
  /** Banned peers are refused on every connection and never dialled (BanList.isBanned). */
  isBanned?: (peer: PeerId) => boolean
  /** Sibling workers: the overlay rejoins through them when its active view empties. */
  bootstrap?: () => PeerId[]
  /** Whose drain notices the overlay takes: the fleet's live workers only. @default nobody's */
  drainTrust?: (peer: PeerId) => DrainTrust
  /** Decides relay reservations (registered accounts, slots per account); this attaches the node to it. */
  reservationPolicy: RelayReservationPolicy
  /**
   * Registered accounts and fleet workers: only their addresses enter the peer store.
   * @default everyone's
   */
  isMember?: (peer: PeerId) => boolean
  /** Which addresses may be dialled; every dial asks it first. @default every address */
  dialPolicy?: Pick<DialPolicy, 'denyDialMultiaddr'>
  /** Counts relayed circuits cut by `PHAROS_RELAY_CIRCUIT_*` (`pharos_limit_blocked_total`). @default not counted */
  limits?: Pick<LimitMetrics, 'blocked'>
  /** Admits inbound connections on every listener (inbound-admission.ts): fair pending slots, progress rules, handshake shedding. */
  admission: InboundAdmission
}

/** The limits of inbound admission, from config. */
export function inboundAdmissionLimits (config: Config): InboundAdmissionLimits {
  return {
    maxPending: config.maxIncomingPendingConnections,
    maxPendingPerSource: config.pendingUpgradesPerSource,
    maxPendingPerPrefix: config.pendingUpgradesPerPrefix,
    connectionsPerSourcePerSecond: config.inboundConnectionsPerIpPerSecond,
    firstMessageTimeoutMs: config.upgradeFirstMessageTimeoutMs,
    minBytesPerSecond: config.upgradeMinBytesPerSecond,
    loopDelayTargetMs: config.handshakeLoopDelayTargetMs,
    maxHandshakesPerSecond: config.maxHandshakesPerSecond,
    minHandshakesPerSecond: config.minHandshakesPerSecond
  }
}

/** The config key of each admission limit, for `pharos_limit_blocked_total`. */
export const ADMISSION_LIMIT_KEYS: Readonly<Record<keyof InboundAdmissionLimits, ConfigKey>> = {
  maxPending: 'maxIncomingPendingConnections',
  maxPendingPerSource: 'pendingUpgradesPerSource',
  maxPendingPerPrefix: 'pendingUpgradesPerPrefix',
  connectionsPerSourcePerSecond: 'inboundConnectionsPerIpPerSecond',
  firstMessageTimeoutMs: 'upgradeFirstMessageTimeoutMs',
  minBytesPerSecond: 'upgradeMinBytesPerSecond',
  loopDelayTargetMs: 'handshakeLoopDelayTargetMs',
  maxHandshakesPerSecond: 'maxHandshakesPerSecond',
  minHandshakesPerSecond: 'minHandshakesPerSecond'
}

/** The relay's stop protocol: the worker's end of a relayed circuit, toward its destination. */
const RELAY_STOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/stop'
/** The errors circuit-relay-v2 aborts a circuit with when it passes a limit, and the key that set it. */
const RELAY_LIMIT_KEYS: Readonly<Record<string, ConfigKey>> = {
  TransferLimitError: 'relayCircuitDataBytes',
  DurationLimitError: 'relayCircuitDurationMs'
}

/**
 * libp2p's metrics, which also count relayed circuits cut by a limit on
 * `pharos_limit_blocked_total`. The relay server says nothing when it cuts a circuit: it
 * aborts both of the circuit's streams with a named error. libp2p hands every stream it
 * negotiates to `trackProtocolStream`, so the worker's end of each circuit (the stop stream
 * it opens to the destination) is watched there, and its close event names the limit.
 */
function countingRelayLimits (factory: (components: PrometheusMetricsComponents) => Metrics, limits: Pick<LimitMetrics, 'blocked'> | undefined): (components: PrometheusMetricsComponents) => Metrics {
  if (limits === undefined) return factory
  return (components) => {
    const metrics = factory(components)
    const track = metrics.trackProtocolStream.bind(metrics)
    metrics.trackProtocolStream = (stream) => {
      track(stream)
      if (stream.protocol !== RELAY_STOP_PROTOCOL) return
      stream.addEventListener('close', (event) => {
        const key = event.error === undefined ? undefined : RELAY_LIMIT_KEYS[event.error.name]
        if (key !== undefined) limits.blocked(key)
      }, { once: true })
    }
    return metrics
  }
}

function ipProtocol (host: string): 'ip4' | 'ip6' {
  return host.includes(':') ? 'ip6' : 'ip4'
}

/**
 * The worker's libp2p node, sized for a beacon rather than a laptop (STYLE.md, "Known
 * traps"): every limit below comes from config, and each default is documented there.
 */
export async function createBeaconNode ({ config, privateKey, log, registry, metrics, admit, networkSize, isBanned, bootstrap, drainTrust, reservationPolicy, dialPolicy, isMember, limits, admission }: BeaconNodeDeps): Promise<BeaconNode> {
  // Inbound connections of non-members held now (by connection ID: a peer registered while
  // connected still frees the place it took). Kept from open/close events, O(1) each.
  const nonMemberConnections = new Set<string>()
  const gater = beaconConnectionGater({
    policy: reservationPolicy,
    events: {
      onNonEd25519: () => metrics.connectionsRefused.inc({ reason: 'not-ed25519' }),
      onReservation: (decision) => metrics.relayReservationRequests.inc({ outcome: decision.allowed ? (decision.renewal ? 'renewed' : 'granted') : decision.reason }),
      onBanned: () => metrics.connectionsRefused.inc({ reason: 'banned' }),
      onNotRegistered: () => metrics.connectionsRefused.inc({ reason: 'not-registered' })
    },
    refuseNonMembers: () => nonMemberConnections.size >= config.maxNonMemberConnections,
    ...(isBanned === undefined ? {} : { isBanned }),
    ...(dialPolicy === undefined ? {} : { denyDial: async (addr) => await dialPolicy.denyDialMultiaddr(addr) }),
    ...(isMember === undefined ? {} : { keepAddressesOf: isMember })
  })
  const ip = ipProtocol(config.p2pHost)
  // A listener's server errors (accept failing with EMFILE: out of file descriptors) are
  // logged, rate-limited, and counted; stock, they were silent (TCP) or fatal (WebSocket).
  const listenerError = listenerErrorReporter({ log: log.child({ component: 'p2p-listener' }), errors: metrics.listenerErrors })

  const node = await createLibp2p({
    privateKey,
    start: false,
    logger: pinoComponentLogger(log),
    addresses: {
      listen: [
        `/${ip}/${config.p2pHost}/tcp/${config.p2pTcpPort}`,
        `/${ip}/${config.p2pHost}/tcp/${config.p2pWsPort}/ws`
      ],
      announce: config.announce
    },
    transports: [
      withListenerErrors('tcp', withInboundAdmission(tcp(), admission), listenerError),
      withListenerErrors('ws', withInboundAdmission(webSockets({ maxPayload: config.wsMaxPayloadBytes }), admission), listenerError)
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({
      enableKeepAlive: config.yamuxKeepAliveIntervalMs > 0,
      keepAliveInterval: Math.max(config.yamuxKeepAliveIntervalMs, 1),
      // Patched in (docs/upstream.md): peers ping us on their own; a connection that brought
      // a frame since the last keep-alive is alive, so only silent ones are pinged.
      keepAliveOnlyWhenIdle: true,
      maxInboundStreams: config.yamuxMaxInboundStreams,
      maxOutboundStreams: config.yamuxMaxOutboundStreams,
      streamOptions: {
        maxWriteBufferLength: config.yamuxMaxWriteBufferBytes,
        maxReadBufferLength: config.yamuxMaxReadBufferBytes
      }
    })],
    connectionGater: gater,
    connectionManager: {
      maxConnections: config.maxConnections,
      // Admission (inbound-admission.ts) enforces the pending caps and the per-source rate,
      // fairly and counted, before libp2p sees a connection. libp2p's own checks stay as a
      // backstop with headroom: an evicted connection frees its libp2p slot a tick after
      // its newcomer takes one.
      maxIncomingPendingConnections: 2 * config.maxIncomingPendingConnections,
      inboundUpgradeTimeout: config.inboundUpgradeTimeoutMs,
      inboundConnectionThreshold: 2 * config.inboundConnectionsPerIpPerSecond
    },
    connectionMonitor: {
      enabled: config.connectionMonitorIntervalMs > 0,
      pingInterval: Math.max(config.connectionMonitorIntervalMs, 1)
    },
    metrics: countingRelayLimits(prometheusMetrics({ registry, preserveExistingMetrics: true, collectDefaultMetrics: false }), limits),
    services: {
      identify: identify(),
      ping: ping(),
      autoNAT: autoNAT(),
      relay: circuitRelayServer({
        maxInboundHopStreams: config.relayMaxInboundHopStreams,
        reservations: {
          maxReservations: config.relayMaxReservations,
          reservationTtl: config.relayReservationTtlMs,
          applyDefaultLimit: true,
          defaultDurationLimit: config.relayCircuitDurationMs,
          defaultDataLimit: BigInt(config.relayCircuitDataBytes)
        }
      }),
      overlay: overlay({
        network: config.network,
        topics: OVERLAY_TOPICS,
        networkSize: Math.max(networkSize, 1),
        admit,
        ...(bootstrap === undefined ? {} : { bootstrap }),
        ...(drainTrust === undefined ? {} : { drainTrust }),
        sendQueueFrames: config.overlaySendQueueFrames,
        sendQueueBytes: config.overlaySendQueueBytes,
        validationsInFlight: config.overlayValidationsInFlight,
        validationTimeoutMs: config.overlayValidationTimeoutMs,
        neighbourBudget: {
          dataFramesPerSecond: config.overlayDataFramesPerSecond,
          dataFramesBurst: config.overlayDataFramesBurst,
          controlFramesPerSecond: config.overlayControlFramesPerSecond,
          controlFramesBurst: config.overlayControlFramesBurst
        },
        neighbourScoring: { backOffMs: config.overlayNeighbourBackOffMs },
        topicConfig: {
          hyparview: { maxPassiveShare: config.overlayPassiveSharePercent / 100 },
          plumtree: { messageCacheMaxBytes: config.overlayMessageCacheBytes, messageCacheTtlMs: config.overlayMessageCacheTtlMs }
        }
      })
    }
  })

  reservationPolicy.attach({
    reservations: () => node.services.relay.reservations.entries(),
    connections: (peer) => node.getConnections(peer)
  })

  // Connection gauges are kept from open/close events, O(1) each, never by listing every
  // connection on scrape.
  node.addEventListener('connection:open', ({ detail: connection }) => {
    flattenComponentValues(connection.remoteAddr)
    if (connection.direction === 'inbound' && isMember !== undefined && !isMember(connection.remotePeer)) nonMemberConnections.add(connection.id)
    const labels = { transport: transportOf(connection.remoteAddr), direction: connection.direction }
    metrics.connections.inc(labels)
    metrics.connectionsOpened.inc(labels)
  })
  node.addEventListener('connection:close', ({ detail: connection }) => {
    nonMemberConnections.delete(connection.id)
    metrics.connections.dec({ transport: transportOf(connection.remoteAddr), direction: connection.direction })
  })
  metrics.countReservationsWith(() => node.services.relay.reservations.size)

  return node
}
