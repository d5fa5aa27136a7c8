import { pino } from 'pino'
import type { Logger as PinoLogger, LevelWithSilent, DestinationStream } from 'pino'

export type Logger = PinoLogger

/** The worker's root logger: pino JSON on stdout. Components take `log.child({ component })`. */
export function createLogger (level: LevelWithSilent, destination?: DestinationStream): Logger {
  return pino({ level, base: { service: 'pharos-beacon' } }, destination)
}
