/**
 * Who a connection or request comes from, for per-source limits. One host commonly holds a
 * whole IPv6 /64, and one network (a hosting provider's block, a botnet's subnet) a whole
 * IPv4 /24 or IPv6 /48, so limits count by these keys rather than by the exact address.
 */
import { isIPv6 } from 'node:net'

/**
 * A source: its IPv4 address (an IPv4-mapped IPv6 address is the IPv4 one), or the /64
 * prefix of its IPv6 address.
 */
export function sourceKey (ip: string): string {
  const v4 = mappedIPv4(ip)
  if (v4 !== undefined) return v4
  const groups = ipv6Groups(ip)
  return groups === undefined ? ip : `${groups.slice(0, 4).join(':')}::/64`
}

/** A source's network: the /24 of an IPv4 address, the /48 of an IPv6 one. */
export function sourcePrefix (ip: string): string {
  const v4 = mappedIPv4(ip)
  if (v4 !== undefined) return `${v4.split('.').slice(0, 3).join('.')}.0/24`
  const groups = ipv6Groups(ip)
  return groups === undefined ? ip : `${groups.slice(0, 3).join(':')}::/48`
}

function mappedIPv4 (ip: string): string | undefined {
  if (/^\d{1,3}(?:\.\d{1,3}){3}$/.test(ip)) return ip
  return /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip)?.[1]
}

/** The eight groups of an IPv6 address, lower-case hex without leading zeros; undefined if it is none. */
function ipv6Groups (ip: string): string[] | undefined {
  const address = ip.split('%')[0] ?? ip
  if (!isIPv6(address)) return undefined
  const [head = '', tail] = address.split('::')
  // A dotted IPv4 tail is two 16-bit groups; it is in the low 64 bits either way.
  const groups = (part: string): string[] => part === '' ? [] : part.split(':').flatMap((group) => group.includes('.') ? ['0', '0'] : [group])
  const high = groups(head)
  const low = tail === undefined ? [] : groups(tail)
  const all = [...high, ...Array<string>(Math.max(8 - high.length - low.length, 0)).fill('0'), ...low]
  return all.map((group) => Number.parseInt(group, 16).toString(16))
}
