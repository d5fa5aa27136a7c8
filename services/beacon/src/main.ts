/**
 * The composition root and CLI of a beacon worker: `pharos-beacon [--flags]` or `npm start`.
 * Config, logger, storage, libp2p and HTTP are built here (through startWorker) and passed
 * down; nothing else reads the environment.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ConfigError, helpText, loadConfig, parseCommandLine } from './config/load.ts'
import { chooseLogFormat, createLogger } from './logging/logger.ts'
import { PortInUseError } from './net/port-in-use.ts'
import { DataDirLockedError } from './storage/data-dir-lock.ts'
import { packageVersion } from './version.ts'
import { encodePeerKey } from './p2p/identity.ts'
import { startWorker } from './worker.ts'

/** Exit code for a configuration the worker cannot start with (sysexits EX_CONFIG). */
const EXIT_CONFIG = 78
/** Exit code when the data dir or a port is held by another process (sysexits EX_TEMPFAIL: retry once it is gone). */
const EXIT_TEMPFAIL = 75

async function main (): Promise<void> {
  let commandLine
  let config
  try {
    commandLine = parseCommandLine(process.argv.slice(2))
    if (commandLine.help) {
      process.stdout.write(helpText())
      return
    }
    if (commandLine.version) {
      process.stdout.write(`pharos-beacon ${packageVersion()}\n`)
      return
    }
    if (commandLine.generateKey) {
      const key = await generateKeyPair('Ed25519')
      process.stdout.write(`PHAROS_PEER_KEY=${encodePeerKey(key)}\n# peer ID ${peerIdFromPrivateKey(key).toString()}\n`)
      return
    }
    config = loadConfig(process.env, commandLine.values)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pharos-beacon: ${err.message}\n`)
      process.exit(EXIT_CONFIG)
    }
    throw err
  }

  const log = createLogger(config.logLevel, undefined, chooseLogFormat(config.logFormat, process.stdout.isTTY === true))
  process.on('unhandledRejection', (err) => { log.error({ err }, 'unhandled rejection (kept running)') })

  let worker
  try {
    worker = await startWorker(config, log)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pharos-beacon: ${err.message}\n`)
      process.exit(EXIT_CONFIG)
    }
    // Another worker has the data dir or a port: one line, no stack; it may be gone later.
    if (err instanceof DataDirLockedError || err instanceof PortInUseError) {
      process.stderr.write(`pharos-beacon: ${err.message}\n`)
      process.exit(EXIT_TEMPFAIL)
    }
    log.fatal({ err }, 'could not start')
    process.exit(1)
  }

  const shutdown = (signal: string): void => {
    log.info({ signal, deadlineMs: config.shutdownTimeoutMs }, 'shutting down')
    const deadline = setTimeout(() => {
      log.error({ deadlineMs: config.shutdownTimeoutMs }, 'drain did not finish before the deadline; exiting 1')
      process.exit(1)
    }, config.shutdownTimeoutMs)
    deadline.unref()
    worker.stop().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'drain failed')
      process.exit(1)
    })
  }
  process.once('SIGTERM', () => { shutdown('SIGTERM') })
  process.once('SIGINT', () => { shutdown('SIGINT') })
}

await main()
