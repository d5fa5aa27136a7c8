/**
 * The one configuration schema of a beacon worker. Every key is read from an environment
 * variable and from a CLI flag of the same name (`PHAROS_HTTP_PORT` ⇔ `--http-port`), is
 * validated once at start, and is documented here: `pharos-beacon --help`, the README table,
 * docker-compose and the Helm values all use exactly these keys.
 *
 * Each default says where its value came from.
 */

import { parseSealingKeys } from '../keys/key-sealing.ts'
import { parseCidr } from '../p2p/dial-policy.ts'

/** A parser turns the raw text into a value or says what is allowed. */
export type Parse<T> = (raw: string) => { ok: true, value: T } | { ok: false, allowed: string }

export interface KeySpec<T> {
  /** The environment variable; the CLI flag is derived from it. */
  env: string
  parse: Parse<T>
  /** Raw text of the default, run through `parse`; `undefined` means "unset". */
  default: string | undefined
  /** One line for `--help` and the README. */
  help: string
  /** Keys whose value must not be printed (tokens, keys, URLs with passwords). */
  secret?: boolean
  /** Grouping in `--help` and the README. */
  group: 'network' | 'http' | 'storage' | 'fleet' | 'pinning' | 'identity' | 'limits' | 'relay' | 'operations'
}

const ok = <T>(value: T): { ok: true, value: T } => ({ ok: true, value })

export function integer (min: number, max: number): Parse<number> {
  return (raw) => {
    const value = Number(raw)
    if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
      return { ok: false, allowed: `an integer from ${min} to ${max}` }
    }
    return ok(value)
  }
}

export const port: Parse<number> = integer(0, 65_535)

export function oneOf<const T extends string> (...values: T[]): Parse<T> {
  return (raw) => (values as string[]).includes(raw)
    ? ok(raw as T)
    : { ok: false, allowed: `one of ${values.join(', ')}` }
}

export const text: Parse<string> = (raw) => ok(raw)

export function pattern (re: RegExp, description: string): Parse<string> {
  return (raw) => re.test(raw) ? ok(raw) : { ok: false, allowed: description }
}

export const host: Parse<string> = pattern(/^[A-Za-z0-9.:-]+$/, 'an IP address or host name')

export const url = (schemes: string[]): Parse<string> => (raw) => {
  try {
    const parsed = new URL(raw)
    if (schemes.includes(parsed.protocol.replace(/:$/, ''))) return ok(raw)
  } catch {
    // not a URL at all: same answer as a wrong scheme
  }
  return { ok: false, allowed: `a URL with scheme ${schemes.join(' or ')}` }
}

/**
 * A web origin exactly as browsers send it in `Origin`: scheme, host and a port only if not
 * the default, no path and no trailing slash (`https://app.example.com`). Anything else
 * would never match a request, so it is refused at start rather than ignored.
 */
export const webOrigin: Parse<string> = (raw) => {
  try {
    const parsed = new URL(raw)
    if ((parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.origin === raw) return ok(raw)
  } catch {
    // not a URL: same answer as one with a path
  }
  return { ok: false, allowed: 'an origin such as https://app.example.com (scheme, lowercase host, port only if not the default; no path or trailing slash)' }
}

export const list = (item: Parse<string>, itemDescription: string): Parse<string[]> => (raw) => {
  const items = raw.split(',').map((part) => part.trim()).filter((part) => part.length > 0)
  for (const entry of items) {
    if (!item(entry).ok) return { ok: false, allowed: `a comma-separated list of ${itemDescription}` }
  }
  return ok(items)
}

/** A pinning token and the owner whose storage its pins count against. */
export interface PinToken {
  owner: string
  token: string
}

const TOKEN = /^[A-Za-z0-9._~+/=-]{16,}$/
const OWNER = /^[A-Za-z0-9._-]{1,64}$/

export const pinTokenList: Parse<PinToken[]> = (raw) => {
  const entries: PinToken[] = []
  for (const part of raw.split(',').map((item) => item.trim()).filter((item) => item.length > 0)) {
    const colon = part.indexOf(':')
    const owner = part.slice(0, colon)
    const token = part.slice(colon + 1)
    if (colon === -1 || !OWNER.test(owner) || !TOKEN.test(token)) {
      return { ok: false, allowed: 'a comma-separated list of owner:token, owner 1–64 of [A-Za-z0-9._-], token at least 16 of [A-Za-z0-9._~+/=-]' }
    }
    entries.push({ owner, token })
  }
  return ok(entries)
}

/** An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a /32 or /128. */
export const cidr: Parse<string> = (raw) => parseCidr(raw) === undefined
  ? { ok: false, allowed: 'an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8' }
  : ok(raw)

export const multiaddrText: Parse<string> = pattern(/^(\/[A-Za-z0-9._~%:+-]+)+$/, 'a multiaddr such as /dns4/beacon.example.com/tcp/4001')

/** PHAROS_ACCOUNTS_SOURCE: `postgres`, or a JSON document's file, http or https URL. */
export const accountsSource: Parse<string> = (raw) => raw === 'postgres' || url(['file', 'http', 'https'])(raw).ok
  ? ok(raw)
  : { ok: false, allowed: 'postgres, or the file:///path or http(s):// URL of a JSON accounts document' }

const MiB = 1024 * 1024
/** One Noise transport frame on the wire: a 2-byte length and up to 65,535 bytes. */
const NOISE_FRAME_BYTES = 2 + 65_535

export const schema = {
  network: {
    env: 'PHAROS_NETWORK',
    group: 'network',
    parse: pattern(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes, 1–63 characters'),
    default: 'pharos',
    help: 'Network id; prefixes every overlay protocol ID and topic (/<network>/hyparview/2.0.0).'
  },
  accountsRefreshMs: {
    env: 'PHAROS_ACCOUNTS_REFRESH_MS',
    group: 'network',
    parse: integer(1000, 3_600_000),
    default: '30000',
    help: 'How often the registered-accounts table is reloaded, so accounts an external feeder writes take effect (guess); changes made through any worker\'s API reach the fleet at once through Redis, and this reload is their fallback.'
  },
  accountsSource: {
    env: 'PHAROS_ACCOUNTS_SOURCE',
    group: 'network',
    parse: accountsSource,
    default: 'postgres',
    secret: true,
    help: 'Where registered accounts come from: postgres (the accounts table, written through the admin API), or a JSON document { "accounts": [peer IDs or { peerId, label }] } at a file:///path or http(s):// URL, read at start (the worker refuses to start if it cannot) and every PHAROS_ACCOUNTS_REFRESH_MS; the admin API then answers 409 to account writes (docs/registry.md). A URL may carry credentials, hence secret.'
  },
  p2pHost: {
    env: 'PHAROS_P2P_HOST',
    group: 'network',
    parse: host,
    default: '0.0.0.0',
    help: 'Address the libp2p TCP and WebSocket listeners bind to.'
  },
  p2pTcpPort: {
    env: 'PHAROS_P2P_TCP_PORT',
    group: 'network',
    parse: port,
    default: '4001',
    help: 'libp2p TCP listen port (0 picks a free port). 4001 is the IPFS convention.'
  },
  p2pWsPort: {
    env: 'PHAROS_P2P_WS_PORT',
    group: 'network',
    parse: port,
    default: '4002',
    help: 'libp2p WebSocket listen port (0 picks a free port).'
  },
  dialAllowCidrs: {
    env: 'PHAROS_DIAL_ALLOW_CIDRS',
    group: 'network',
    parse: list(cidr, 'CIDRs'),
    default: '',
    help: 'Comma-separated CIDRs the worker may dial although the built-in rule refuses them (link-local, metadata, reserved; private, loopback and CGNAT ranges the worker does not announce or listen on), e.g. 10.0.0.0/8 for a LAN (docs/foundation.md "Dial filter").'
  },
  dialDenyCidrs: {
    env: 'PHAROS_DIAL_DENY_CIDRS',
    group: 'network',
    parse: list(cidr, 'CIDRs'),
    default: '',
    help: 'Comma-separated CIDRs the worker never dials, whatever else allows them (fleet workers\' own addresses excepted), e.g. the database subnet.'
  },
  announce: {
    env: 'PHAROS_ANNOUNCE',
    group: 'network',
    parse: list(multiaddrText, 'multiaddrs'),
    default: '',
    help: 'Comma-separated multiaddrs to announce instead of the listen addresses (public DNS or IP behind NAT/LB).'
  },
  httpHost: {
    env: 'PHAROS_HTTP_HOST',
    group: 'http',
    parse: host,
    default: '127.0.0.1',
    help: 'Address the HTTP server (health, metrics, admin, pinning API, gateway) binds to; containers need 0.0.0.0.'
  },
  httpPort: {
    env: 'PHAROS_HTTP_PORT',
    group: 'http',
    parse: port,
    default: '8080',
    help: 'HTTP listen port (0 picks a free port).'
  },
  adminTokens: {
    env: 'PHAROS_ADMIN_TOKENS',
    group: 'http',
    parse: list(pattern(/^[A-Za-z0-9._~+/=-]{16,}$/, 'token'), 'bearer tokens of at least 16 characters [A-Za-z0-9._~+/=-]'),
    default: '',
    secret: true,
    help: 'Comma-separated bearer tokens for /v1. Empty: embedded mode generates one into the data dir; fleet mode answers 401 to every /v1 call.'
  },
  pinsCorsOrigins: {
    env: 'PHAROS_PINS_CORS_ORIGINS',
    group: 'http',
    parse: list(webOrigin, 'origins such as https://app.example.com (no path or trailing slash)'),
    default: '',
    help: 'Comma-separated origins (scheme://host[:port]) whose browser pages may call the Pinning Service API (/pins) with a token: CORS with Authorization allowed. Empty: no CORS on /pins (the gateway, /ipfs, allows any origin).'
  },
  gatewayCarMaxBlocks: {
    env: 'PHAROS_GATEWAY_CAR_MAX_BLOCKS',
    group: 'http',
    parse: integer(1, 100_000_000),
    default: undefined,
    help: 'Most blocks one gateway CAR response carries, and most CIDs its walk holds at once (blocks sent plus links waiting), so its memory is bounded whatever the DAG\'s shape; a DAG past it is cut off there. Unset: PHAROS_PIN_MAX_BLOCKS, so whatever pins can be served.'
  },
  gatewayCarMaxBytes: {
    env: 'PHAROS_GATEWAY_CAR_MAX_BYTES',
    group: 'http',
    parse: integer(1, Number.MAX_SAFE_INTEGER),
    default: undefined,
    help: 'Most bytes of blocks one gateway CAR response carries; a DAG past it is cut off there. Unset: PHAROS_PIN_MAX_BYTES.'
  },
  gatewayCarMaxDepth: {
    env: 'PHAROS_GATEWAY_CAR_MAX_DEPTH',
    group: 'http',
    parse: integer(0, 1_000_000),
    default: undefined,
    help: 'Deepest link path (root is 0, along the depth-first path the CAR follows) one gateway CAR response walks; deeper is cut off there. Unset: PHAROS_PIN_MAX_DEPTH.'
  },
  gatewayCarTimeoutMs: {
    env: 'PHAROS_GATEWAY_CAR_TIMEOUT_MS',
    group: 'http',
    parse: integer(1000, 86_400_000),
    default: '600000',
    help: 'Longest one gateway CAR response may stream before it is cut off, however slowly its client reads (guess: as PHAROS_PIN_TIMEOUT_MS, 1 GiB at ~2 MB/s).'
  },
  gatewayCarMaxStreams: {
    env: 'PHAROS_GATEWAY_CAR_MAX_STREAMS',
    group: 'http',
    parse: integer(1, 10_000),
    default: '16',
    help: 'Gateway CAR responses one worker streams at once; one more gets 429 with Retry-After (guess: a walk holds ~85 bytes per CID (measured, docs/storage.md), ~21 MiB at 250,000 blocks, so 16 stay near 350 MiB).'
  },
  gatewayCarMaxStreamsPerIp: {
    env: 'PHAROS_GATEWAY_CAR_MAX_STREAMS_PER_IP',
    group: 'http',
    parse: integer(1, 10_000),
    default: '4',
    help: 'Gateway CAR responses one client (IPv4 address or IPv6 /64, as the TCP connection shows it) streams at once; one more gets 429 with Retry-After (guess: a browser or CLI fetches a few DAGs in parallel).'
  },
  entriesMaxBodyBytes: {
    env: 'PHAROS_ENTRIES_MAX_BODY_BYTES',
    group: 'http',
    parse: integer(1024, 1024 * MiB),
    default: String(32 * MiB),
    help: 'Largest CAR POST /v1/entries accepts (an entry and its content blocks); a larger body gets 413 (guess: a post with a few photos from a phone; the body is held in memory while it is checked).'
  },
  entriesMaxBlocks: {
    env: 'PHAROS_ENTRIES_MAX_BLOCKS',
    group: 'http',
    parse: integer(1, 1_000_000),
    default: '4096',
    help: 'Most blocks one POST /v1/entries CAR may carry, the entry\'s included; more gets 413 (guess: 32 MiB of 8 KiB blocks).'
  },
  entriesPerMinutePerIp: {
    env: 'PHAROS_ENTRIES_PER_MINUTE_PER_IP',
    group: 'http',
    parse: integer(1, 1_000_000),
    default: '60',
    help: 'POST /v1/entries requests one client (IPv4 address or IPv6 /64) may make per minute, with a burst of ten seconds\' worth; past it 429 with Retry-After, before the body is read (guess: a person posts far less; a client behind a shared NAT gets room).'
  },
  entriesPerMinutePerAuthor: {
    env: 'PHAROS_ENTRIES_PER_MINUTE_PER_AUTHOR',
    group: 'http',
    parse: integer(1, 1_000_000),
    default: '30',
    help: 'Entries one author may post through POST /v1/entries per minute on one worker, with a burst of ten seconds\' worth; past it 429 with Retry-After. The per-author limits of gossip (PHAROS_AUTHOR_*) apply too (guess: a person posts far less).'
  },
  httpPressureMaxEventLoopDelayMs: {
    env: 'PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS',
    group: 'http',
    parse: integer(0, 600_000),
    default: '250',
    help: 'While the event loop has been held longer than this at a time within the last 1–2 s, HTTP answers 503 with Retry-After (all but /healthz, /readyz, /metrics and the admin API) and /readyz reports overload; 0 turns it off (guess: PharosEventLoopLag\'s 250 ms, over ten times the 20 ms p99 of a worker holding its connection target, under the 2.4 s stalls a handshake flood caused in issue 19).'
  },
  httpPressureMaxHeapUsedBytes: {
    env: 'PHAROS_HTTP_PRESSURE_MAX_HEAP_USED_BYTES',
    group: 'http',
    parse: integer(0, Number.MAX_SAFE_INTEGER),
    default: undefined,
    help: 'While the V8 heap in use is over this, HTTP sheds and /readyz reports overload, as above; 0 turns it off. Unset: 90% of V8\'s heap limit (--max-old-space-size), near which V8 spends its time in GC and then aborts (guess).'
  },
  httpPressureMaxRssBytes: {
    env: 'PHAROS_HTTP_PRESSURE_MAX_RSS_BYTES',
    group: 'http',
    parse: integer(0, Number.MAX_SAFE_INTEGER),
    default: undefined,
    help: 'While the resident memory is over this, HTTP sheds and /readyz reports overload, as above; 0 turns it off. Unset: 90% of the memory limit the OS sets the process (a container\'s cgroup limit), so new work goes elsewhere before the OOM killer acts; off where there is none (guess).'
  },
  databaseUrl: {
    env: 'DATABASE_URL',
    group: 'storage',
    parse: url(['postgres', 'postgresql']),
    default: undefined,
    secret: true,
    help: 'Postgres server URL. Unset: embedded PGlite in PHAROS_DATA_DIR.'
  },
  databasePoolSize: {
    env: 'PHAROS_DATABASE_POOL_SIZE',
    group: 'storage',
    parse: integer(1, 500),
    default: '20',
    help: 'Postgres connections per worker (guess: pin jobs, HTTP and ingest in parallel).'
  },
  redisUrl: {
    env: 'REDIS_URL',
    group: 'storage',
    parse: url(['redis', 'rediss']),
    default: undefined,
    secret: true,
    help: 'Redis URL for fleet-shared state. Unset: shared state is kept in process (one worker only).'
  },
  redisMode: {
    env: 'PHAROS_REDIS_MODE',
    group: 'fleet',
    parse: oneOf('single', 'cluster'),
    default: 'single',
    help: 'single: REDIS_URL is one Redis server. cluster: REDIS_URL is any node of a Redis Cluster; the rest are discovered from it.'
  },
  redisPrefix: {
    env: 'PHAROS_REDIS_PREFIX',
    group: 'fleet',
    parse: pattern(/^[A-Za-z0-9:._-]{1,64}$/, '1–64 of [A-Za-z0-9:._-] (no braces: hash tags follow the prefix)'),
    default: 'pharos:',
    help: 'Every Redis key and channel of this fleet starts with this, so fleets (or networks) can share one Redis.'
  },
  fleetHeartbeatMs: {
    env: 'PHAROS_FLEET_HEARTBEAT_MS',
    group: 'fleet',
    parse: integer(500, 60_000),
    default: '5000',
    help: 'How often a worker renews its membership and flushes its peer view to Redis; it drops out of the fleet after three missed beats (guess).'
  },
  seenTtlMs: {
    env: 'PHAROS_SEEN_TTL_MS',
    group: 'fleet',
    parse: integer(10_000, 86_400_000),
    default: '600000',
    help: 'How long the fleet remembers a message ID it has handled, so no other worker verifies, stores or pins it again (guess: 10 min, well past gossip and sync retries).'
  },
  seenClaimTtlMs: {
    env: 'PHAROS_SEEN_CLAIM_TTL_MS',
    group: 'fleet',
    parse: integer(1000, 600_000),
    default: '30000',
    help: 'How long one worker\'s claim on a message holds before the others check Postgres and take it over (a worker killed mid-ingest loses nothing) (guess).'
  },
  peerViewRetentionMs: {
    env: 'PHAROS_PEER_VIEW_RETENTION_MS',
    group: 'fleet',
    parse: integer(0, 86_400_000),
    default: '600000',
    help: 'How long a disconnected peer stays in its worker\'s view in Redis (with its last-seen time and addresses) before it is dropped (guess).'
  },
  dataDir: {
    env: 'PHAROS_DATA_DIR',
    group: 'storage',
    parse: pattern(/^.+$/, 'a directory path'),
    default: './data',
    help: 'Embedded mode: PGlite database, peer key and generated admin token live here.'
  },
  gcIntervalMs: {
    env: 'PHAROS_GC_INTERVAL_MS',
    group: 'storage',
    parse: integer(0, 7 * 86_400_000),
    default: '3600000',
    help: 'How often a worker tries to run block GC (one runs at a time across the fleet); 0 runs it only on POST /v1/gc (guess: hourly).'
  },
  gcGraceMs: {
    env: 'PHAROS_GC_GRACE_MS',
    group: 'storage',
    parse: integer(0, 30 * 86_400_000),
    default: '3600000',
    help: 'GC never removes a block written, or relied on by a pin job, within this window (guess: 1 h; it must outlast the seconds a pin job takes to record a block it touched).'
  },
  auditIntervalMs: {
    env: 'PHAROS_AUDIT_INTERVAL_MS',
    group: 'storage',
    parse: integer(0, 7 * 86_400_000),
    default: '300000',
    help: 'How often a worker runs a storage audit round (re-read and re-hash a random sample of pinned blocks, repair bad ones from peers, sign a report); 0 disables audits (guess: every 5 min).'
  },
  auditSampleSize: {
    env: 'PHAROS_AUDIT_SAMPLE_SIZE',
    group: 'storage',
    parse: integer(1, 1024),
    default: '64',
    help: 'Pinned blocks one audit round checks, drawn at random by each worker (guess: 64 per 5 min is ~18,000 a day per worker).'
  },
  auditMaxBytesPerSecond: {
    env: 'PHAROS_AUDIT_MAX_BYTES_PER_SECOND',
    group: 'storage',
    parse: integer(64 * 1024, 1024 * MiB),
    default: String(4 * MiB),
    help: 'Audit reads are throttled to this many block bytes per second, one block at a time, so live work keeps Postgres and the CPU (guess: a few % of one core hashing).'
  },
  auditRepairTimeoutMs: {
    env: 'PHAROS_AUDIT_REPAIR_TIMEOUT_MS',
    group: 'storage',
    parse: integer(1000, 3_600_000),
    default: '60000',
    help: 'Longest an audit waits for one missing or corrupt block to arrive from peers; the repair is then recorded as failed (guess).'
  },
  auditChallengesPerMinute: {
    env: 'PHAROS_AUDIT_CHALLENGES_PER_MINUTE',
    group: 'storage',
    parse: integer(0, 100_000),
    default: '12',
    help: 'Storage-proof challenges one peer may send this worker per minute (each names at most 64 blocks); more are refused as rate-limited; 0 refuses every challenge (guess).'
  },
  pinTokens: {
    env: 'PHAROS_PIN_TOKENS',
    group: 'pinning',
    parse: pinTokenList,
    default: '',
    secret: true,
    help: 'Comma-separated owner:token pairs accepted by the Pinning Service API (/pins); the owner names whose storage a pin counts against. Empty: the admin tokens are accepted, as owner "admin".'
  },
  pinMaxBytes: {
    env: 'PHAROS_PIN_MAX_BYTES',
    group: 'pinning',
    parse: integer(1, Number.MAX_SAFE_INTEGER),
    default: String(1024 * MiB),
    help: 'Largest DAG one pin may hold, in bytes of distinct blocks; a larger one fails naming this key (guess: 1 GiB).'
  },
  pinMaxBlocks: {
    env: 'PHAROS_PIN_MAX_BLOCKS',
    group: 'pinning',
    parse: integer(1, 100_000_000),
    default: '250000',
    help: 'Most distinct blocks one pin may hold; more fails naming this key (guess: 1 GiB of 4 KiB blocks).'
  },
  pinMaxDepth: {
    env: 'PHAROS_PIN_MAX_DEPTH',
    group: 'pinning',
    parse: integer(0, 1_000_000),
    default: '256',
    help: 'Deepest link path from a pin\'s root (root is 0); deeper fails naming this key (guess: UnixFS trees of terabytes are under 10 deep).'
  },
  dagMaxLinksPerBlock: {
    env: 'PHAROS_DAG_MAX_LINKS_PER_BLOCK',
    group: 'pinning',
    parse: integer(1, 1_000_000),
    default: '10000',
    help: 'Most links one block may hold when a pin or a gateway CAR walks it; a block with more fails the pin, or ends the CAR, naming this key (guess: UnixFS nodes link at most 1,024 (files 174, HAMT shards 256), and a flat directory of 10,000 entries is ~1 MiB).'
  },
  pinTimeoutMs: {
    env: 'PHAROS_PIN_TIMEOUT_MS',
    group: 'pinning',
    parse: integer(1000, 86_400_000),
    default: '600000',
    help: 'Longest one pin attempt may fetch; it is retried with backoff, and the last attempt fails naming this key (guess: 1 GiB at ~2 MB/s).'
  },
  pinStallTimeoutMs: {
    env: 'PHAROS_PIN_STALL_TIMEOUT_MS',
    group: 'pinning',
    parse: integer(1000, 86_400_000),
    default: '30000',
    help: 'A pin attempt that receives no block for this long is given up and retried with backoff, re-dialling its origins (guess: a live provider answers a want within seconds).'
  },
  pinOwnerQuotaBytes: {
    env: 'PHAROS_PIN_OWNER_QUOTA_BYTES',
    group: 'pinning',
    parse: integer(1, Number.MAX_SAFE_INTEGER),
    default: String(10 * 1024 * MiB),
    help: 'Bytes of distinct blocks an owner\'s pins may hold; a new pin at or over it gets 429, a pin that would cross it fails naming this key (guess: 10 GiB).'
  },
  authorQuotaBytes: {
    env: 'PHAROS_AUTHOR_QUOTA_BYTES',
    group: 'pinning',
    parse: integer(1, Number.MAX_SAFE_INTEGER),
    default: String(1024 * MiB),
    help: 'Bytes of distinct blocks one author\'s log and the content it links may hold; an entry whose content would cross it stays stored but its pin fails naming this key (guess: 1 GiB).'
  },
  orphanFetchMaxEntries: {
    env: 'PHAROS_ORPHAN_FETCH_MAX_ENTRIES',
    group: 'pinning',
    parse: integer(1, 1_000_000),
    default: '10000',
    help: 'Most entry blocks one ancestor fetch takes (for one orphan entry, or one head announced on sync) from the peer that sent it; a fetch never starts another, and one author has one fetch at a time (guess).'
  },
  orphanFetchTimeoutMs: {
    env: 'PHAROS_ORPHAN_FETCH_TIMEOUT_MS',
    group: 'pinning',
    parse: integer(100, 3_600_000),
    default: '60000',
    help: 'How long one orphan fetch may take before it is abandoned; the entries fetched so far are kept (guess).'
  },
  orphanFetchesPerPeer: {
    env: 'PHAROS_ORPHAN_FETCHES_PER_PEER',
    group: 'limits',
    parse: integer(1, 1024),
    default: '4',
    help: 'Ancestor fetches one registered peer may cause at once (the peer that sent an orphan, or announced heads on sync); more are dropped and counted (guess: a peer announces its own head and a few it follows; each fetch may hold a 4 MiB batch).'
  },
  orphanFetchesMax: {
    env: 'PHAROS_ORPHAN_FETCHES_MAX',
    group: 'limits',
    parse: integer(1, 10_000),
    default: '16',
    help: 'Ancestor fetches one worker runs at once, over all peers; more are dropped and counted (guess: 16 batches of up to 4 MiB is 64 MiB held at worst).'
  },
  authorEntriesPerMinute: {
    env: 'PHAROS_AUTHOR_ENTRIES_PER_MINUTE',
    group: 'limits',
    parse: integer(1, 6_000_000),
    default: '600',
    help: 'Entries per minute one author may push to this worker over gossip (token bucket refill); more are refused as rate-limited and not forwarded; entries the worker fetches itself are bounded by the fetch limits instead (guess: 10/s, far above a person posting).'
  },
  authorEntryBurst: {
    env: 'PHAROS_AUTHOR_ENTRY_BURST',
    group: 'limits',
    parse: integer(1, 1_000_000),
    default: '200',
    help: 'Entries one author may push at once before PHAROS_AUTHOR_ENTRIES_PER_MINUTE applies (token bucket size; guess: a client publishing a queue of posts made offline).'
  },
  authorMaxEntries: {
    env: 'PHAROS_AUTHOR_MAX_ENTRIES',
    group: 'limits',
    parse: integer(1, 1_000_000_000),
    default: '100000',
    help: 'Entries stored for one author (forks, orphans and entries whose pin failed included); a new entry past it is refused, nothing stored (guess: 27 posts a day for ten years).'
  },
  authorMaxOrphans: {
    env: 'PHAROS_AUTHOR_MAX_ORPHANS',
    group: 'limits',
    parse: integer(1, 1_000_000_000),
    default: '10000',
    help: 'Orphan entries (ancestry not yet connected to genesis) stored for one author; a new orphan past it is refused, nothing stored (guess: one full ancestor fetch, PHAROS_ORPHAN_FETCH_MAX_ENTRIES).'
  },
  authorMaxPendingPins: {
    env: 'PHAROS_AUTHOR_MAX_PENDING_PINS',
    group: 'limits',
    parse: integer(1, 1_000_000_000),
    default: '1000',
    help: 'Entry pins of one author that may be queued or pinning at once; a new entry while that many are pending is refused, nothing stored, until some settle (guess: a burst of posts whose content is still coming).'
  },
  syncReceiptsPerMinute: {
    env: 'PHAROS_SYNC_RECEIPTS_PER_MINUTE',
    group: 'limits',
    parse: integer(1, 1_000_000),
    default: '60',
    help: 'Receipt requests one registered peer may make over the sync protocol per minute (token bucket of this size); more are answered `unavailable`. Unregistered peers get none (guess: a publisher asks once per entry it waits for).'
  },
  syncReceiptChecksMax: {
    env: 'PHAROS_SYNC_RECEIPT_CHECKS_MAX',
    group: 'limits',
    parse: integer(1, 1024),
    default: '4',
    help: 'Receipt checks (a walk of the log or of a pin\'s blocks, then a signature) one worker runs at once for sync requests; more are answered `unavailable` (guess: a few database connections, as for storage-proof challenges).'
  },
  syncHeadRequestsPerMinute: {
    env: 'PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE',
    group: 'limits',
    parse: integer(1, 1_000_000),
    default: '12',
    help: 'HEAD requests on the sync topic one registered asker gets answered per minute by this worker (token bucket of this size); more are not answered. Unregistered askers get nothing (guess: an app asks when it opens and when the user follows someone; the SDK asks at most once every 10 s).'
  },
  syncHeadAnswersMax: {
    env: 'PHAROS_SYNC_HEAD_ANSWERS_MAX',
    group: 'limits',
    parse: integer(1, 1024),
    default: '8',
    help: 'HEAD requests on the sync topic one worker answers at once (a Postgres query, then a push to the asker); more are not answered (guess: a few database connections, as for receipt checks).'
  },
  pinConcurrency: {
    env: 'PHAROS_PIN_CONCURRENCY',
    group: 'pinning',
    parse: integer(0, 1000),
    default: '4',
    help: 'Pin jobs one worker runs at once; 0 makes the worker serve the API without taking jobs (guess).'
  },
  pinFetchConcurrency: {
    env: 'PHAROS_PIN_FETCH_CONCURRENCY',
    group: 'pinning',
    parse: integer(1, 1024),
    default: '32',
    help: 'Blocks one pin job asks peers for at once over Bitswap (guess: enough in flight to fill a LAN link with 256 KiB blocks).'
  },
  pinLeaseMs: {
    env: 'PHAROS_PIN_LEASE_MS',
    group: 'pinning',
    parse: integer(1000, 3_600_000),
    default: '30000',
    help: 'A worker holds a pin job under a lease it renews every third of this; a job whose lease lapsed (its worker died) is taken by another worker (guess).'
  },
  pinPollIntervalMs: {
    env: 'PHAROS_PIN_POLL_INTERVAL_MS',
    group: 'pinning',
    parse: integer(50, 600_000),
    default: '1000',
    help: 'How often an idle worker looks for claimable pin jobs (a pin added through this worker starts at once).'
  },
  pinMaxAttempts: {
    env: 'PHAROS_PIN_MAX_ATTEMPTS',
    group: 'pinning',
    parse: integer(1, 1000),
    default: '5',
    help: 'Attempts (including ones whose worker died) before a pin fails for good (guess).'
  },
  entryPinMaxAttempts: {
    env: 'PHAROS_ENTRY_PIN_MAX_ATTEMPTS',
    group: 'pinning',
    parse: integer(1, 10_000),
    default: '40',
    help: 'Attempts a log entry\'s pin gets before it fails for good (its entry stays stored, its content unpinned): longer than PHAROS_PIN_MAX_ATTEMPTS, because the content comes from an author who may be offline; each attempt on missing content holds a pin slot for up to PHAROS_PIN_STALL_TIMEOUT_MS (guess: with the default backoff, about 3 h of patience).'
  },
  pinRetryBaseMs: {
    env: 'PHAROS_PIN_RETRY_BASE_MS',
    group: 'pinning',
    parse: integer(0, 86_400_000),
    default: '5000',
    help: 'Backoff before the second attempt; it doubles with every further attempt (guess).'
  },
  pinRetryMaxMs: {
    env: 'PHAROS_PIN_RETRY_MAX_MS',
    group: 'pinning',
    parse: integer(0, 86_400_000),
    default: '300000',
    help: 'Longest backoff between attempts (guess: 5 min).'
  },
  peerKey: {
    env: 'PHAROS_PEER_KEY',
    group: 'identity',
    parse: pattern(/^[A-Za-z0-9+/]+={0,2}$/, 'a base64 protobuf-encoded ed25519 private key (pharos-beacon --generate-key prints one)'),
    default: undefined,
    secret: true,
    help: 'The worker\'s ed25519 peer key. Unset in embedded mode: generated once and kept in the data dir.'
  },
  fleetSecret: {
    env: 'PHAROS_FLEET_SECRET',
    group: 'identity',
    parse: pattern(/^.{32,}$/, 'at least 32 characters (e.g. `openssl rand -base64 32`)'),
    default: undefined,
    secret: true,
    help: 'Without PHAROS_PEER_KEY, the worker\'s key is derived from this secret, the network and PHAROS_WORKER_NAME, so a replaced worker keeps its peer ID without a disk. Fleet mode needs this or PHAROS_PEER_KEY.'
  },
  keySealingSecret: {
    env: 'PHAROS_KEY_SEALING_SECRET',
    group: 'identity',
    parse: parseSealingKeys,
    default: undefined,
    secret: true,
    help: 'Seals deposited content keys at rest (AES-256-GCM), so a database dump reveals none: `<version>:<base64 of exactly 32 random bytes>`, comma-separated, current first (`v2:…,v1:…`); older versions only open what they sealed and are re-sealed under the current one at start. Make one: echo "v1:$(openssl rand -base64 32)". Unset: embedded mode generates one into the data dir; with DATABASE_URL the worker has no key-exchange role (it refuses deposits and GETKEY as unavailable) and runs everything else.'
  },
  registryKey: {
    env: 'PHAROS_REGISTRY_KEY',
    group: 'identity',
    parse: pattern(/^[A-Za-z0-9+/]+={0,2}$/, 'a base64 protobuf-encoded ed25519 private key (pharos-beacon --generate-key prints one)'),
    default: undefined,
    secret: true,
    help: 'The fleet\'s registry key: every worker signs the registry of accounts it serves to peers (GET /v1/registry, /<network>/registry/1.0.0) with it, and peers check that one key. Unset: derived from PHAROS_FLEET_SECRET and the network; without that either (embedded mode), generated once and kept in the data dir. Fleet mode needs this or PHAROS_FLEET_SECRET (docs/registry.md).'
  },
  workerName: {
    env: 'PHAROS_WORKER_NAME',
    group: 'identity',
    parse: pattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, '1–63 of [A-Za-z0-9._-], starting with a letter or digit'),
    default: undefined,
    help: 'This worker\'s name in the fleet (and, with PHAROS_FLEET_SECRET, its identity). Unset: the host name, which is stable for a StatefulSet pod but is a random container ID under docker compose (set it there).'
  },
  maxConnections: {
    env: 'PHAROS_MAX_CONNECTIONS',
    group: 'limits',
    parse: integer(1, 1_000_000),
    default: '10000',
    help: 'Connections held before the connection manager prunes (beacon sizing; libp2p default 300 is for a laptop).'
  },
  maxNonMemberConnections: {
    env: 'PHAROS_MAX_NON_MEMBER_CONNECTIONS',
    group: 'limits',
    parse: integer(0, 1_000_000),
    default: '2000',
    help: 'Inbound connections that peers who are neither registered accounts nor fleet workers may hold at once; past it such a peer is refused once Noise names it (`not-registered`), so a flood of fresh identities cannot take the places of the network\'s members; a value above PHAROS_MAX_CONNECTIONS never binds (guess: a fifth of the default 10,000, for content fetchers and peers not yet registered).'
  },
  maxIncomingPendingConnections: {
    env: 'PHAROS_MAX_INCOMING_PENDING_CONNECTIONS',
    group: 'limits',
    parse: integer(1, 100_000),
    default: '256',
    help: 'Inbound connections allowed mid-upgrade (Noise + Yamux) at once; when full, a newcomer from a network holding fewer slots takes the oldest slot of the network holding most (`evicted`), otherwise it is refused (`pending-cap`) (guess: covers a 200 conn/s burst at ~5 ms handshakes with margin; libp2p default 10).'
  },
  inboundUpgradeTimeoutMs: {
    env: 'PHAROS_INBOUND_UPGRADE_TIMEOUT_MS',
    group: 'limits',
    parse: integer(100, 600_000),
    default: '10000',
    help: 'An inbound connection that has not finished Noise + Yamux by then is closed (libp2p default 10 s).'
  },
  inboundConnectionsPerIpPerSecond: {
    env: 'PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND',
    group: 'limits',
    parse: integer(1, 100_000),
    default: '5',
    help: 'Inbound connections one source (an IPv4 address, an IPv6 /64) may open per second, with a second\'s burst; more are refused (`rate-limit`; libp2p default 5).'
  },
  pendingUpgradesPerSource: {
    env: 'PHAROS_PENDING_UPGRADES_PER_SOURCE',
    group: 'limits',
    parse: integer(1, 100_000),
    default: '8',
    help: 'Inbound connections mid-upgrade at once from one source (an IPv4 address, an IPv6 /64); past it a newcomer is refused (`source-cap`). At most PHAROS_PENDING_UPGRADES_PER_PREFIX (guess: an honest peer dials one at a time; a NAT with a few peers starting together fits).'
  },
  pendingUpgradesPerPrefix: {
    env: 'PHAROS_PENDING_UPGRADES_PER_PREFIX',
    group: 'limits',
    parse: integer(1, 100_000),
    default: '32',
    help: 'Inbound connections mid-upgrade at once from one network (an IPv4 /24, an IPv6 /48). When it is full, a newcomer from a source holding fewer takes the oldest slot of the source holding most (`evicted`); otherwise it is refused (`source-cap`). At most PHAROS_MAX_INCOMING_PENDING_CONNECTIONS (guess: an eighth of the global cap, so eight networks are needed to fill it).'
  },
  upgradeFirstMessageTimeoutMs: {
    env: 'PHAROS_UPGRADE_FIRST_MESSAGE_TIMEOUT_MS',
    group: 'limits',
    parse: integer(100, 600_000),
    default: '2000',
    help: 'An inbound connection whose first multistream-select message is not complete this long after the accept is closed (`slow-upgrade`), long before PHAROS_INBOUND_UPGRADE_TIMEOUT_MS (guess: an initiator sends it at once, so this is half a round trip plus margin for a very slow link).'
  },
  upgradeMinBytesPerSecond: {
    env: 'PHAROS_UPGRADE_MIN_BYTES_PER_SECOND',
    group: 'limits',
    parse: integer(0, 1_000_000),
    default: '16',
    help: 'After PHAROS_UPGRADE_FIRST_MESSAGE_TIMEOUT_MS, an inbound connection mid-upgrade that has sent fewer bytes per second on average since its accept is closed (`slow-upgrade`); 0 turns the check off (guess: an honest initiator sends ~60 bytes before it waits on us, which stays above 16/s for ~4 s of our own delay).'
  },
  handshakeLoopDelayTargetMs: {
    env: 'PHAROS_HANDSHAKE_LOOP_DELAY_TARGET_MS',
    group: 'limits',
    parse: integer(0, 60_000),
    default: '50',
    help: 'Event-loop delay above which new inbound handshakes are shed (`overload`): the admitted rate halves while the loop lags and grows back while it keeps up; 0 turns shedding off, leaving PHAROS_MAX_HANDSHAKES_PER_SECOND (guess: the load target for a connection burst, loop delay p99 ≤ 50 ms).'
  },
  maxHandshakesPerSecond: {
    env: 'PHAROS_MAX_HANDSHAKES_PER_SECOND',
    group: 'limits',
    parse: integer(1, 1_000_000),
    default: '300',
    help: 'Most new inbound handshakes admitted per second while the event loop keeps up (measurement: an accept costs ~3.5 ms of CPU, so one core absorbs ~280/s; the 200 conn/s burst target fits).'
  },
  minHandshakesPerSecond: {
    env: 'PHAROS_MIN_HANDSHAKES_PER_SECOND',
    group: 'limits',
    parse: integer(1, 1_000_000),
    default: '10',
    help: 'Fewest new inbound handshakes admitted per second however far the event loop lags, so some peers still get in; at most PHAROS_MAX_HANDSHAKES_PER_SECOND (guess).'
  },
  wsMaxPayloadBytes: {
    env: 'PHAROS_WS_MAX_PAYLOAD_BYTES',
    group: 'limits',
    parse: integer(NOISE_FRAME_BYTES, MiB),
    default: String(MiB),
    help: 'Largest WebSocket message accepted; capped at 1 MiB (the ws default of 100 MiB lets one peer pin 100 MiB of RAM), and at least one whole Noise frame (65,537 bytes): a peer that sends a frame per message, stock or patched, must not be cut off.'
  },
  yamuxMaxWriteBufferBytes: {
    env: 'PHAROS_YAMUX_MAX_WRITE_BUFFER_BYTES',
    group: 'limits',
    parse: integer(64 * 1024, 64 * MiB),
    default: String(MiB),
    help: 'Bytes buffered per stream for a slow reader before the stream is reset (yamux default: unbounded).'
  },
  bitswapMaxWriteBufferBytes: {
    env: 'PHAROS_BITSWAP_MAX_WRITE_BUFFER_BYTES',
    group: 'limits',
    parse: integer(4 * MiB + 64 * 1024, 1024 * MiB),
    default: String(32 * MiB),
    help: 'Write buffer of the streams that carry Bitswap blocks to a peer, instead of PHAROS_YAMUX_MAX_WRITE_BUFFER_BYTES: a peer\'s blocks in flight (PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT) wait here in messages of up to 4 MiB until it reads them (guess: 32 wanted 1 MiB blocks, the width of a Helia or Kubo session).'
  },
  bitswapPeerBytesInFlight: {
    env: 'PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT',
    group: 'limits',
    parse: integer(64 * 1024, 1024 * MiB),
    default: String(4 * MiB),
    help: 'Bytes of blocks read for one peer over Bitswap and not yet written to its stream; more wait, and a re-want of a block already queued reads nothing. At most PHAROS_BITSWAP_BYTES_IN_FLIGHT and half of PHAROS_BITSWAP_MAX_WRITE_BUFFER_BYTES (guess: one 4 MiB Bitswap message, 40 MiB/s to one peer at a 100 ms round trip).'
  },
  bitswapBytesInFlight: {
    env: 'PHAROS_BITSWAP_BYTES_IN_FLIGHT',
    group: 'limits',
    parse: integer(64 * 1024, 16 * 1024 * MiB),
    default: String(64 * MiB),
    help: 'Bytes of blocks read for all peers over Bitswap and not yet written; when contended, freed room goes first to the waiting peer holding least (guess: 16 peers at their full share, a few % of the chart\'s 2 GiB memory limit).'
  },
  bitswapSendStallMs: {
    env: 'PHAROS_BITSWAP_SEND_STALL_MS',
    group: 'limits',
    parse: integer(100, 600_000),
    default: '10000',
    help: 'A Bitswap stream to a peer that takes no byte for this long (checked every this long) is reset and its budget freed (@helia/bitswap\'s own 10 s send timeout, which its block sends never applied).'
  },
  yamuxMaxReadBufferBytes: {
    env: 'PHAROS_YAMUX_MAX_READ_BUFFER_BYTES',
    group: 'limits',
    parse: integer(64 * 1024, 64 * MiB),
    default: String(MiB),
    help: 'Bytes buffered per stream before it is read, before the stream is reset (yamux default 4 MiB).'
  },
  yamuxMaxInboundStreams: {
    env: 'PHAROS_YAMUX_MAX_INBOUND_STREAMS',
    group: 'limits',
    parse: integer(1, 10_000),
    default: '256',
    help: 'Concurrent inbound streams per connection (guess: overlay, sync, bitswap, relay need a handful; yamux default 1000).'
  },
  yamuxMaxOutboundStreams: {
    env: 'PHAROS_YAMUX_MAX_OUTBOUND_STREAMS',
    group: 'limits',
    parse: integer(1, 10_000),
    default: '256',
    help: 'Concurrent outbound streams per connection (guess, as above).'
  },
  yamuxKeepAliveIntervalMs: {
    env: 'PHAROS_YAMUX_KEEPALIVE_INTERVAL_MS',
    group: 'limits',
    parse: integer(0, 3_600_000),
    default: '60000',
    help: 'Yamux keep-alive ping interval of the worker; 0 disables it. Peers ping on their own (yamux default 30 s), so the worker pings half as often, and only connections that sent it nothing since its last keep-alive (docs/foundation.md).'
  },
  overlaySendQueueFrames: {
    env: 'PHAROS_OVERLAY_SEND_QUEUE_FRAMES',
    group: 'limits',
    parse: integer(16, 1_000_000),
    default: '1024',
    help: 'Overlay frames queued per neighbour link before the neighbour is dropped from the views for a minute (guess: seconds of IHAVE/gossip at a busy node).'
  },
  overlaySendQueueBytes: {
    env: 'PHAROS_OVERLAY_SEND_QUEUE_BYTES',
    group: 'limits',
    parse: integer(64 * 1024, 1024 * MiB),
    default: String(4 * MiB),
    help: 'Overlay bytes queued per neighbour link: past half of it the neighbour gets IHAVEs instead of payloads, at it the neighbour is dropped from the views for a minute (guess: four 1 MiB payloads, or ~250 content envelopes; an empty queue always takes one frame).'
  },
  overlayValidationsInFlight: {
    env: 'PHAROS_OVERLAY_VALIDATIONS_IN_FLIGHT',
    group: 'limits',
    parse: integer(1, 100_000),
    default: '256',
    help: 'Gossip messages validated at once (envelope, signatures, registration) before they may be forwarded; past it a new one is dropped unforwarded, its sender not blamed (guess: a few seconds of a busy content topic; a check takes about a millisecond).'
  },
  overlayValidationTimeoutMs: {
    env: 'PHAROS_OVERLAY_VALIDATION_TIMEOUT_MS',
    group: 'limits',
    parse: integer(100, 600_000),
    default: '5000',
    help: 'A gossip message not validated within this is dropped unforwarded, its sender not blamed (guess: the checks are in memory and take milliseconds; this only catches a stuck check).'
  },
  overlayMessageCacheBytes: {
    env: 'PHAROS_OVERLAY_MESSAGE_CACHE_BYTES',
    group: 'limits',
    parse: integer(64 * 1024, 1024 * MiB),
    default: String(8 * MiB),
    help: 'Payloads each overlay topic keeps to answer GRAFTs, by total bytes; the oldest go first (guess: 512 content envelopes of the 16.5 KiB maximum; services/protocol MESSAGE_CACHE_MAX_BYTES).'
  },
  overlayMessageCacheTtlMs: {
    env: 'PHAROS_OVERLAY_MESSAGE_CACHE_TTL_MS',
    group: 'limits',
    parse: integer(1000, 3_600_000),
    default: '60000',
    help: 'How long each overlay topic keeps a payload to answer GRAFTs, enforced by a timer even when the topic is quiet (guess: far beyond any GRAFT delay; services/protocol MESSAGE_CACHE_TTL_MS).'
  },
  overlayDataFramesPerSecond: {
    env: 'PHAROS_OVERLAY_DATA_FRAMES_PER_SECOND',
    group: 'limits',
    parse: integer(1, 1_000_000),
    default: '200',
    help: 'Gossip payloads, and IDs announced in IHAVEs, one overlay neighbour may send per second; past the bucket they are dropped and cost it score (guess: a neighbour sends each message once, pushed or announced; twice the 100 messages/s of the issue-18 benchmarks; docs/overlay-driver.md).'
  },
  overlayDataFramesBurst: {
    env: 'PHAROS_OVERLAY_DATA_FRAMES_BURST',
    group: 'limits',
    parse: integer(1, 10_000_000),
    default: '400',
    help: 'Gossip payloads (and announced IDs) one overlay neighbour may send at once, above its rate (guess: two seconds at the default rate).'
  },
  overlayControlFramesPerSecond: {
    env: 'PHAROS_OVERLAY_CONTROL_FRAMES_PER_SECOND',
    group: 'limits',
    parse: integer(1, 1_000_000),
    default: '200',
    help: 'Control frames (IHAVE, GRAFT, PRUNE, HyParView) one overlay neighbour may send per second; past the bucket they are dropped and cost it score (guess: a GRAFT and a PRUNE per message at 100 messages/s while a tree settles).'
  },
  overlayControlFramesBurst: {
    env: 'PHAROS_OVERLAY_CONTROL_FRAMES_BURST',
    group: 'limits',
    parse: integer(1, 10_000_000),
    default: '2000',
    help: 'Control frames one overlay neighbour may send at once, above its rate (guess: the FORWARDJOINs a beacon passes on, one per join per topic, for a burst of ~600 joins).'
  },
  overlayPassiveSharePercent: {
    env: 'PHAROS_OVERLAY_PASSIVE_SHARE_PERCENT',
    group: 'limits',
    parse: integer(1, 100),
    default: '25',
    help: 'Most of an overlay topic\'s passive view, in percent, the peers one neighbour named (SHUFFLE, FORWARDJOIN) may hold; past it its names replace its own (guess: services/protocol MAX_PASSIVE_SHARE; 100 is the HyParView paper\'s unbounded merge).'
  },
  overlayNeighbourBackOffMs: {
    env: 'PHAROS_OVERLAY_NEIGHBOUR_BACKOFF_MS',
    group: 'limits',
    parse: integer(100, 86_400_000),
    default: '60000',
    help: 'How long an overlay neighbour dropped for misbehaving (score below the threshold, bad message ID, send queue over its bound) is kept out the first time; each further drop within an hour doubles it, up to an hour (issue 17\'s minute).'
  },
  connectionMonitorIntervalMs: {
    env: 'PHAROS_CONNECTION_MONITOR_INTERVAL_MS',
    group: 'limits',
    parse: integer(0, 3_600_000),
    default: '0',
    help: 'libp2p connection monitor ping interval; 0 turns it off (pinging 10k connections every 10 s stalls the event loop; yamux keep-alive covers liveness).'
  },
  relayMaxReservations: {
    env: 'PHAROS_RELAY_MAX_RESERVATIONS',
    group: 'relay',
    parse: integer(0, 1_000_000),
    default: '2048',
    help: 'Relay reservations held by this worker at once, over all peers (libp2p default 15).'
  },
  relayMaxReservationsPerIp: {
    env: 'PHAROS_RELAY_MAX_RESERVATIONS_PER_IP',
    group: 'relay',
    parse: integer(0, 1_000_000),
    default: '8',
    help: 'Reservations held at once by peers connecting from one IP address (guess: a household or small NAT).'
  },
  relayMaxReservationsPerPeer: {
    env: 'PHAROS_RELAY_MAX_RESERVATIONS_PER_PEER',
    group: 'relay',
    parse: integer(1, 1_000),
    default: '4',
    help: 'Reservation requests (new or renewed) one peer may make per reservation TTL; a peer holds at most one reservation, this bounds how often it may ask (guess: one renewal per TTL plus reconnects).'
  },
  relaySlotsPerAccount: {
    env: 'PHAROS_RELAY_SLOTS_PER_ACCOUNT',
    group: 'relay',
    parse: integer(0, 1_000),
    default: '2',
    help: 'Relay reservations one registered account may hold at once over the whole fleet, at most one per worker (counted in Redis); a reconnect or renewal at the same worker reuses its slot, unregistered peers get none, 0 turns relaying off (guess: a peer holding two beacons reserves on both).'
  },
  relayReservationTtlMs: {
    env: 'PHAROS_RELAY_RESERVATION_TTL_MS',
    group: 'relay',
    parse: integer(10_000, 86_400_000),
    default: '3600000',
    help: 'How long a reservation lasts before the peer must renew it (circuit relay v2 spec suggests 1 h).'
  },
  relayCircuitDurationMs: {
    env: 'PHAROS_RELAY_CIRCUIT_DURATION_MS',
    group: 'relay',
    parse: integer(1000, 86_400_000),
    default: '120000',
    help: 'Longest a relayed circuit lives before it is reset, which both ends see as an error (libp2p default 2 min: enough to hole-punch or fetch a little).'
  },
  relayCircuitDataBytes: {
    env: 'PHAROS_RELAY_CIRCUIT_DATA_BYTES',
    group: 'relay',
    parse: integer(1024, 1024 * MiB),
    default: String(MiB),
    help: 'Bytes a relayed circuit may carry, both directions together, before it is reset, which both ends see as an error (libp2p default 128 KiB; 1 MiB lets small posts through).'
  },
  relayMaxInboundHopStreams: {
    env: 'PHAROS_RELAY_MAX_INBOUND_HOP_STREAMS',
    group: 'relay',
    parse: integer(1, 100_000),
    default: '32',
    help: 'Concurrent relay hop streams one connection may open (libp2p default 32).'
  },
  logLevel: {
    env: 'PHAROS_LOG_LEVEL',
    group: 'operations',
    parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
    default: 'info',
    help: 'pino log level. libp2p\'s own logs appear at debug (its errors) and trace (the rest).'
  },
  logFormat: {
    env: 'PHAROS_LOG_FORMAT',
    group: 'operations',
    parse: oneOf('auto', 'json', 'pretty'),
    default: 'auto',
    help: 'Log lines as pino JSON, one object a line (json), or human-readable records through pino-pretty, coloured on a terminal (pretty); auto: pretty when stdout is a terminal, JSON otherwise (containers, pipes, files).'
  },
  shutdownTimeoutMs: {
    env: 'PHAROS_SHUTDOWN_TIMEOUT_MS',
    group: 'operations',
    parse: integer(100, 600_000),
    default: '15000',
    help: 'On SIGTERM, the drain must finish within this deadline or the process exits 1 (k8s grace period is 30 s).'
  },
  shutdownDrainMs: {
    env: 'PHAROS_SHUTDOWN_DRAIN_MS',
    group: 'operations',
    parse: integer(0, 600_000),
    default: '8000',
    help: 'On SIGTERM, how long the worker waits for the peers it told to move (to sibling workers from fleet membership) to leave before it closes; must be less than PHAROS_SHUTDOWN_TIMEOUT_MS; 0 tells them but does not wait (guess: a dial and an overlay join, with room for storage and libp2p to stop within 15 s).'
  },
  shutdownReadinessDelayMs: {
    env: 'PHAROS_SHUTDOWN_READINESS_DELAY_MS',
    group: 'operations',
    parse: integer(0, 600_000),
    default: '3000',
    help: 'On SIGTERM, /readyz answers 503 for this long before connections close, so load balancers stop sending new peers first.'
  }
} as const satisfies Record<string, KeySpec<unknown>>

export type ConfigSchema = typeof schema
export type ConfigKey = keyof ConfigSchema
type ValueOf<K extends ConfigKey> = ConfigSchema[K]['parse'] extends Parse<infer T> ? T : never
type Optional<K extends ConfigKey> = ConfigSchema[K]['default'] extends undefined ? K : never

/** The validated, frozen configuration passed down from main. */
export type Config = {
  readonly [K in Exclude<ConfigKey, Optional<ConfigKey>>]: ValueOf<K>
} & {
  readonly [K in Optional<ConfigKey>]?: ValueOf<K>
}

/** `PHAROS_HTTP_PORT` → `--http-port`; `DATABASE_URL` → `--database-url`. */
export function flagFor (env: string): string {
  return '--' + env.replace(/^PHAROS_/, '').toLowerCase().replaceAll('_', '-')
}
