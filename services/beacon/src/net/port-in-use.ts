/**
 * A port the worker is configured to listen on is taken. The message is the one line an
 * operator reads: the config key, the address, and what to do.
 */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError'
  /** The config key(s) of the port, e.g. `PHAROS_HTTP_PORT`. */
  readonly key: string

  constructor (key: string, address: string, options?: ErrorOptions) {
    super(`${key}: ${address} is already in use by another process (another Pharos worker?); stop it or set ${key} to a free port`, options)
    this.key = key
  }
}

/** Where a listener's EADDRINUSE says it tried to bind, if it says. */
interface AddressInUse { address?: string, port?: number }

/**
 * The EADDRINUSE inside `err`, however deep: Fastify throws Node's own error, libp2p wraps
 * its transports' (as `cause`, or among an AggregateError's `errors`).
 */
export function findAddressInUse (err: unknown, depth = 0): AddressInUse | undefined {
  if (typeof err !== 'object' || err === null || depth > 8) return undefined
  const candidate = err as { code?: unknown, address?: unknown, port?: unknown, message?: unknown, cause?: unknown, errors?: unknown }
  if (candidate.code === 'EADDRINUSE' || (typeof candidate.message === 'string' && candidate.message.includes('EADDRINUSE'))) {
    const fromMessage = typeof candidate.message === 'string' ? /EADDRINUSE[^\n]*?(\S+):(\d+)\b/.exec(candidate.message) : null
    return {
      ...(typeof candidate.address === 'string' ? { address: candidate.address } : fromMessage?.[1] === undefined ? {} : { address: fromMessage[1] }),
      ...(typeof candidate.port === 'number' ? { port: candidate.port } : fromMessage?.[2] === undefined ? {} : { port: Number(fromMessage[2]) })
    }
  }
  for (const inner of [candidate.cause, ...Array.isArray(candidate.errors) ? candidate.errors : []]) {
    const found = findAddressInUse(inner, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * `err` as a PortInUseError naming the config key of the port that is taken, or undefined if
 * it is not an EADDRINUSE. `ports` are the config keys of what was being bound and their
 * values; when the error does not say its port, or it matches none, every key is named.
 */
export function portInUse (err: unknown, host: string, ports: Readonly<Record<string, number>>): PortInUseError | undefined {
  const found = findAddressInUse(err)
  if (found === undefined) return undefined
  const matching = Object.entries(ports).filter(([, port]) => port === found.port)
  const keys = matching.length === 1 ? matching : Object.entries(ports)
  const key = keys.map(([name]) => name).join(' or ')
  const port = found.port ?? (keys.length === 1 ? keys[0]?.[1] : undefined)
  const address = `${found.address ?? host}:${port ?? keys.map(([, value]) => value).join('/')}`
  return new PortInUseError(key, address, { cause: err })
}
