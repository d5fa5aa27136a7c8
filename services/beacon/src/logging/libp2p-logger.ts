import { format } from 'node:util'
import type { ComponentLogger, Logger as Libp2pLogger } from '@libp2p/interface'
import type { Logger } from './logger.ts'

/**
 * Component loggers kept, one per name: libp2p's names are a closed set in its code, but a
 * name with an ID in it (its test helpers make some) must not grow the map without end.
 */
const MAX_COMPONENT_LOGGERS = 1024

/**
 * Bridges libp2p's `debug`-style component loggers into pino, so libp2p's own logs are JSON
 * lines like ours. libp2p calls `.error` for many routine events (a peer hung up mid-stream),
 * so its errors map to pino `debug` and everything else to `trace`; neither is emitted at
 * the default `info` level, and a disabled level costs one boolean check.
 *
 * One logger per component name, made once: libp2p asks for a component logger for every
 * inbound connection (`libp2p:tcp:connection`, `libp2p:websockets:connection`), and a pino
 * child each was about 0.8 KiB held for the connection's life and 2 µs of the accept, for
 * the same bindings every time (docs/benchmarks.md, "Admission").
 */
export function pinoComponentLogger (root: Logger): ComponentLogger {
  const loggers = new Map<string, Libp2pLogger>()
  return {
    forComponent (name: string): Libp2pLogger {
      const known = loggers.get(name)
      if (known !== undefined) return known
      const logger = makeLogger(root.child({ component: 'libp2p', libp2p: name }))
      if (loggers.size < MAX_COMPONENT_LOGGERS) loggers.set(name, logger)
      return logger
    }
  }
}

function makeLogger (log: Logger): Libp2pLogger {
  const traceOn = log.isLevelEnabled('trace')
  const debugOn = log.isLevelEnabled('debug')
  const emit = (level: 'trace' | 'debug', formatter: unknown, args: unknown[]): void => {
    log[level](render(formatter, args))
  }
  const logger = ((formatter: unknown, ...args: unknown[]) => { if (traceOn) emit('trace', formatter, args) }) as Libp2pLogger
  logger.error = (formatter: unknown, ...args: unknown[]) => { if (debugOn) emit('debug', formatter, args) }
  logger.trace = (formatter: unknown, ...args: unknown[]) => { if (traceOn) emit('trace', formatter, args) }
  logger.enabled = traceOn
  // libp2p makes a scope per stream; a pino child each was 1 % of a loaded worker's CPU
  // (profile at 3,000 connections) for lines that are never emitted at the default level.
  logger.newScope = (name: string) => traceOn || debugOn ? makeLogger(log.child({ scope: name })) : logger
  return logger
}

/** libp2p uses extra printf verbs: %p peer, %a multiaddr, %c CID, %e error, %b/%t bytes. */
function render (formatter: unknown, args: unknown[]): string {
  if (typeof formatter !== 'string') return format(formatter, ...args)
  let i = 0
  const text = formatter.replace(/%([pacebtsdoOj%])/g, (match, verb: string) => {
    if (verb === '%') return '%'
    const arg = args[i++]
    switch (verb) {
      case 'e': return arg instanceof Error ? (arg.stack ?? arg.message) : String(arg)
      case 'b': case 't': return arg instanceof Uint8Array ? Buffer.from(arg).toString('hex') : String(arg)
      case 'p': case 'a': case 'c': return String(arg)
      default: return format(match, arg)
    }
  })
  return args.length > i ? format(text, ...args.slice(i)) : text
}
