import { pino } from 'pino'
import type { Logger as PinoLogger, LevelWithSilent, DestinationStream } from 'pino'
import pinoPretty from 'pino-pretty'

export type Logger = PinoLogger

/**
 * How log lines are written: `json`, one pino JSON object a line (what log shippers read),
 * or `pretty`, human-readable records (pino-pretty) for a person at a terminal.
 */
export type LogFormat = 'json' | 'pretty'

/** PHAROS_LOG_FORMAT: a format, or `auto` to choose by whether stdout is a terminal. */
export type LogFormatSetting = LogFormat | 'auto'

/**
 * The format the worker logs in: the one PHAROS_LOG_FORMAT names, or with `auto` `pretty`
 * when stdout is a terminal (someone is reading it) and `json` otherwise (a container, a
 * pipe, a file: something is parsing it).
 */
export function chooseLogFormat (setting: LogFormatSetting, stdoutIsTerminal: boolean): LogFormat {
  if (setting !== 'auto') return setting
  return stdoutIsTerminal ? 'pretty' : 'json'
}

/**
 * The worker's root logger: pino records on stdout (or `destination`), JSON or pretty.
 * Components take `log.child({ component })`.
 *
 * Pretty lines are formatted in this thread and written synchronously: a terminal is read by
 * a person at human rates, and a line written just before `process.exit` (a fatal start
 * error) must not be lost in a buffer. JSON stays pino's own fast path.
 */
export function createLogger (level: LevelWithSilent, destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  const options = { level, base: { service: 'pharos-beacon' } }
  if (format === 'json') return pino(options, destination)
  const pretty = pinoPretty({
    destination: destination ?? 1,
    sync: true,
    colorize: destination === undefined && process.stdout.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    // Every line has it; on a terminal it is only noise.
    ignore: 'service'
  })
  return pino(options, pretty)
}
