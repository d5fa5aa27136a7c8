/**
 * Which addresses a worker may dial (issue 17, item 16). Peers name the addresses a worker
 * dials — identify's listen addresses, pin origins, address lookups, AutoNAT dial-backs — so
 * without a filter any peer could point the worker's sockets at its own network: cloud
 * metadata services, Postgres, Redis, a Unix socket. The gater asks this before every dial
 * (`denyDialMultiaddr`, after libp2p has resolved `/dnsaddr`), and no socket is opened for a
 * refused address. The rule, first match wins:
 *
 * 1. a fleet worker's own address (from membership) is always dialable;
 * 2. an address in PHAROS_DIAL_DENY_CIDRS is refused (`denied-cidr`);
 * 3. an address in PHAROS_DIAL_ALLOW_CIDRS is dialable;
 * 4. link-local, cloud-metadata and reserved addresses (unspecified, multicast, 240/4,
 *    NAT64) are refused;
 * 5. loopback, private (RFC 1918, fc00::/7) and CGNAT (100.64/10) addresses are refused
 *    unless the worker itself announces (or, announcing nothing, listens on) an address of
 *    that class: a worker on a LAN, in a cluster or in a test reaches its neighbours, a
 *    worker that announces a public address does not reach into its own network;
 * 6. anything else that is an IP is dialable; a multiaddr that starts with no IP or DNS name
 *    (`/unix/…`, `/memory/…`) is refused (`not-ip`).
 *
 * A DNS multiaddr (`/dns4`, `/dns6`, `/dns`) is resolved here and refused if any of its
 * addresses is (or it does not resolve). The transport resolves the name again when it
 * connects, so a name whose records change in between (DNS rebinding, TTL 0) can still
 * reach a refused address; what that buys is a connection that carries a multistream-select
 * header and a Noise handshake, no request of the attacker's choosing.
 */
import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { Multiaddr } from '@multiformats/multiaddr'
import { multiaddr } from '@multiformats/multiaddr'

/** What kind of network an IP address is on. */
export type AddressRange = 'metadata' | 'link-local' | 'reserved' | 'loopback' | 'private' | 'cgnat' | 'public'

/** Why a dial was refused: a closed set, for the `pharos_dials_denied_total{range}` label. */
export type DialRefusal = Exclude<AddressRange, 'public'> | 'denied-cidr' | 'not-ip' | 'unresolvable'

export const DIAL_REFUSALS: readonly DialRefusal[] = ['metadata', 'link-local', 'reserved', 'loopback', 'private', 'cgnat', 'denied-cidr', 'not-ip', 'unresolvable']

type Family = 'ipv4' | 'ipv6'

/**
 * The built-in ranges, most specific first: metadata endpoints sit inside link-local, CGNAT
 * and ULA ranges and must be named before them.
 */
const RANGES: ReadonlyArray<readonly [Exclude<AddressRange, 'public'>, string, number, Family]> = [
  ['metadata', '169.254.169.254', 32, 'ipv4'], // AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
  ['metadata', '169.254.170.2', 32, 'ipv4'], // AWS ECS task metadata
  ['metadata', '100.100.100.200', 32, 'ipv4'], // Alibaba Cloud
  ['metadata', 'fd00:ec2::254', 128, 'ipv6'], // AWS instance metadata over IPv6
  ['link-local', '169.254.0.0', 16, 'ipv4'],
  ['link-local', 'fe80::', 10, 'ipv6'],
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['loopback', '::1', 128, 'ipv6'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['private', 'fc00::', 7, 'ipv6'],
  ['cgnat', '100.64.0.0', 10, 'ipv4'],
  ['reserved', '0.0.0.0', 8, 'ipv4'], // "this network"
  ['reserved', '224.0.0.0', 4, 'ipv4'], // multicast
  ['reserved', '240.0.0.0', 4, 'ipv4'], // reserved, and 255.255.255.255
  ['reserved', '::', 128, 'ipv6'], // unspecified
  ['reserved', 'ff00::', 8, 'ipv6'], // multicast
  ['reserved', '64:ff9b::', 96, 'ipv6'] // NAT64: reaches any IPv4 address, the ones above included
]

/** Ranges a worker's own addresses can open to dials; the others only PHAROS_DIAL_ALLOW_CIDRS opens. */
const OPENED_BY_OWN_ADDRESS: ReadonlySet<AddressRange> = new Set(['loopback', 'private', 'cgnat'])

const blockLists = new Map<AddressRange, BlockList>()
for (const [range, address, prefix, family] of RANGES) {
  let list = blockLists.get(range)
  if (list === undefined) {
    list = new BlockList()
    blockLists.set(range, list)
  }
  list.addSubnet(address, prefix, family)
}

function familyOf (ip: string): Family | undefined {
  const version = isIP(ip)
  return version === 4 ? 'ipv4' : version === 6 ? 'ipv6' : undefined
}

/** The range of an IP address (metadata before link-local, and so on). */
export function rangeOf (ip: string): AddressRange {
  const family = familyOf(ip)
  if (family === undefined) return 'reserved'
  for (const [range, list] of blockLists) if (list.check(ip, family)) return range
  return 'public'
}

/** `a.b.c.d/n` or `x::y/n`, or undefined. */
export function parseCidr (text: string): { address: string, prefix: number, family: Family } | undefined {
  const slash = text.lastIndexOf('/')
  const address = slash === -1 ? text : text.slice(0, slash)
  const family = familyOf(address)
  if (family === undefined) return undefined
  const max = family === 'ipv4' ? 32 : 128
  const prefix = slash === -1 ? max : Number(text.slice(slash + 1))
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (slash !== -1 && !/^\d+$/.test(text.slice(slash + 1)))) return undefined
  return { address, prefix, family }
}

function blockListOf (cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const text of cidrs) {
    const cidr = parseCidr(text)
    if (cidr === undefined) throw new RangeError(`not a CIDR: ${text}`)
    list.addSubnet(cidr.address, cidr.prefix, cidr.family)
  }
  return list
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::'])

/**
 * The ranges a worker's own addresses are on: those of its announced addresses, or, when it
 * announces none, of the host it binds (every interface's, for a wildcard, loopback left out:
 * binding 0.0.0.0 is not a reason to dial 127.0.0.1).
 */
export function ownRanges (p2pHost: string, announce: readonly string[], interfaces = networkInterfaces): Set<AddressRange> {
  const ips: string[] = []
  if (announce.length > 0) {
    for (const text of announce) {
      try {
        const host = hostAndPort(multiaddr(text))
        if (host !== undefined && host.kind === 'ip') ips.push(host.host)
      } catch {
        // a malformed announce address is config's to refuse, not this rule's
      }
    }
  } else if (!WILDCARD_HOSTS.has(p2pHost)) {
    ips.push(p2pHost)
  } else {
    for (const addresses of Object.values(interfaces())) {
      for (const address of addresses ?? []) if (!address.internal) ips.push(address.address.split('%')[0] ?? address.address)
    }
  }
  return new Set(ips.map(rangeOf).filter((range) => OPENED_BY_OWN_ADDRESS.has(range)))
}

interface HostAndPort {
  kind: 'ip' | 'dns'
  host: string
  /** 4 or 6 for `/dns4` and `/dns6`; 0 for `/dns` and IPs. */
  family: 0 | 4 | 6
  port: string | undefined
}

/** The host a multiaddr's first hop dials (a relay's, for a relayed address), or undefined if it names none. */
function hostAndPort (addr: Multiaddr): HostAndPort | undefined {
  const [first, second] = addr.getComponents()
  if (first?.value === undefined) return undefined
  const port = second?.name === 'tcp' || second?.name === 'udp' ? second.value : undefined
  switch (first.name) {
    case 'ip4': case 'ip6': return { kind: 'ip', host: first.value, family: 0, port }
    case 'dns4': return { kind: 'dns', host: first.value, family: 4, port }
    case 'dns6': return { kind: 'dns', host: first.value, family: 6, port }
    case 'dns': return { kind: 'dns', host: first.value, family: 0, port }
    default: return undefined
  }
}

const keyOf = (host: HostAndPort): string => `${host.host.toLowerCase()}|${host.port ?? ''}`

/** Resolves a DNS name to its IP addresses (`dns.lookup`, the resolver the transports connect with). */
export type Resolve = (host: string, family: 0 | 4 | 6, signal: AbortSignal) => Promise<string[]>

const systemResolve: Resolve = async (host, family, signal) => {
  const lookedUp = lookup(host, { all: true, family })
  const aborted = new Promise<never>((_resolve, reject) => {
    signal.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
  })
  return (await Promise.race([lookedUp, aborted])).map((entry) => entry.address)
}

export interface DialPolicyInit {
  /** PHAROS_DIAL_ALLOW_CIDRS: dialable though a built-in rule refuses them. */
  allow: readonly string[]
  /** PHAROS_DIAL_DENY_CIDRS: never dialled (fleet workers excepted). */
  deny: readonly string[]
  /** Ranges the worker's own addresses open (`ownRanges`). */
  own: ReadonlySet<AddressRange>
  /** Told of every refusal, with its reason. */
  onRefused?: (reason: DialRefusal) => void
  /** @default dns.lookup, raced with a timeout */
  resolve?: Resolve
  /** How long resolving a DNS multiaddr may take. @default 5000 (guess: a slow resolver, not a dead one) */
  resolveTimeoutMs?: number
}

export class DialPolicy {
  private readonly allow: BlockList
  private readonly deny: BlockList
  private readonly own: ReadonlySet<AddressRange>
  private readonly onRefused: (reason: DialRefusal) => void
  private readonly resolve: Resolve
  private readonly resolveTimeoutMs: number
  private fleet = new Set<string>()

  constructor (init: DialPolicyInit) {
    this.allow = blockListOf(init.allow)
    this.deny = blockListOf(init.deny)
    this.own = init.own
    this.onRefused = init.onRefused ?? (() => {})
    this.resolve = init.resolve ?? systemResolve
    this.resolveTimeoutMs = init.resolveTimeoutMs ?? 5000
  }

  /** The live fleet workers' multiaddrs (membership): always dialable. */
  setFleetAddresses (multiaddrs: readonly string[]): void {
    const keys = new Set<string>()
    for (const text of multiaddrs) {
      try {
        const host = hostAndPort(multiaddr(text))
        if (host !== undefined) keys.add(keyOf(host))
      } catch {
        // not a multiaddr: nothing to open
      }
    }
    this.fleet = keys
  }

  /** Why an IP address may not be dialled, or undefined if it may. */
  refusalOf (ip: string): DialRefusal | undefined {
    const family = familyOf(ip)
    if (family === undefined) return 'not-ip'
    if (this.deny.check(ip, family)) return 'denied-cidr'
    if (this.allow.check(ip, family)) return undefined
    const range = rangeOf(ip)
    if (range === 'public' || this.own.has(range)) return undefined
    return range
  }

  /** The gater's `denyDialMultiaddr`: true (and counted) if `addr` may not be dialled. */
  async denyDialMultiaddr (addr: Multiaddr): Promise<boolean> {
    const refusal = await this.check(addr)
    if (refusal === undefined) return false
    this.onRefused(refusal)
    return true
  }

  private async check (addr: Multiaddr): Promise<DialRefusal | undefined> {
    const host = hostAndPort(addr)
    if (host === undefined) return 'not-ip'
    if (this.fleet.has(keyOf(host))) return undefined
    if (host.kind === 'ip') return this.refusalOf(host.host)
    let ips: string[]
    try {
      ips = await this.resolve(host.host, host.family, AbortSignal.timeout(this.resolveTimeoutMs))
    } catch {
      return 'unresolvable'
    }
    if (ips.length === 0) return 'unresolvable'
    for (const ip of ips) {
      if (this.fleet.has(keyOf({ ...host, kind: 'ip', host: ip }))) continue
      const refusal = this.refusalOf(ip)
      if (refusal !== undefined) return refusal
    }
    return undefined
  }
}
