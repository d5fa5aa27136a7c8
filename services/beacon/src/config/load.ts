import { readFileSync } from 'node:fs'
import { isLoopbackHost, isLoopbackMultiaddr, PUBLIC_ADMIN_TOKENS, PUBLIC_FLEET_SECRETS } from './public-secrets.ts'
import { flagFor, schema } from './schema.ts'
import type { Config, ConfigKey, KeySpec } from './schema.ts'

/** A configuration value that cannot be used. The message names the key, value and what is allowed. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly key: string
  readonly value: string | undefined
  readonly allowed: string

  constructor (key: string, value: string | undefined, allowed: string, secret = false) {
    const shown = value === undefined ? '(unset)' : secret ? '(hidden)' : JSON.stringify(value)
    super(`invalid configuration: ${key}=${shown}; allowed: ${allowed}`)
    this.key = key
    this.value = value
    this.allowed = allowed
  }
}

export interface CommandLine {
  /** Raw values by env name, from `--flag value` or `--flag=value`. */
  values: Map<string, string>
  help: boolean
  /** `--version`: print the package version and exit. */
  version: boolean
  generateKey: boolean
}

/**
 * A secret key (`secret: true`) may instead name a file that holds its value, as `<KEY>_FILE`
 * (env) or `--<flag>-file`: Docker and Kubernetes secrets are mounted as files, and a value
 * in a file stays out of `docker inspect`, the process environment and shell history.
 */
export const FILE_SUFFIX = '_FILE'

const specs = schema as Record<ConfigKey, KeySpec<unknown>>

/** A flag names a key (`env`) or, for a secret key, the file that holds it (`<env>_FILE`). */
interface FlagTarget { env: string, secret: boolean }
const byFlag = new Map<string, FlagTarget>(Object.values(specs).flatMap((spec): Array<[string, FlagTarget]> => {
  const secret = spec.secret === true
  const own: [string, FlagTarget] = [flagFor(spec.env), { env: spec.env, secret }]
  return secret ? [own, [flagFor(spec.env + FILE_SUFFIX), { env: spec.env + FILE_SUFFIX, secret: false }]] : [own]
}))

/** Parses argv (without node and script). Unknown flags are a ConfigError naming the flag. */
export function parseCommandLine (argv: readonly string[]): CommandLine {
  const values = new Map<string, string>()
  let help = false
  let version = false
  let generateKey = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? ''
    if (arg === '--help' || arg === '-h') { help = true; continue }
    if (arg === '--version' || arg === '-v') { version = true; continue }
    if (arg === '--generate-key') { generateKey = true; continue }
    const eq = arg.indexOf('=')
    const flag = eq === -1 ? arg : arg.slice(0, eq)
    const target = byFlag.get(flag)
    if (target === undefined) throw new ConfigError(flag, undefined, 'a flag listed by --help')
    let value: string | undefined
    if (eq !== -1) {
      value = arg.slice(eq + 1)
    } else {
      value = argv[i + 1]
      i++
    }
    if (value === undefined) throw new ConfigError(flag, undefined, 'a value after the flag', target.secret)
    values.set(target.env, value)
  }
  return { values, help, version, generateKey }
}

/**
 * Validates every key once: flags override environment variables, which override defaults.
 * Throws a ConfigError for the first bad value.
 */
export function loadConfig (env: Readonly<Record<string, string | undefined>>, flags: ReadonlyMap<string, string> = new Map()): Config {
  const config: Record<string, unknown> = {}
  for (const [key, spec] of Object.entries(specs)) {
    const fromFile = spec.secret === true ? readSecretFile(spec.env, env, flags) : undefined
    const raw = fromFile?.value ?? flags.get(spec.env) ?? env[spec.env] ?? spec.default
    if (raw === undefined) continue
    const result = spec.parse(raw)
    if (!result.ok) {
      const allowed = fromFile === undefined ? result.allowed : `${result.allowed} (read from ${fromFile.key}=${fromFile.path})`
      throw new ConfigError(spec.env, raw, allowed, spec.secret)
    }
    config[key] = result.value
  }
  const typed = config as Config
  if (typed.redisUrl !== undefined && typed.databaseUrl === undefined) {
    throw new ConfigError('REDIS_URL', typed.redisUrl, 'only together with DATABASE_URL: a fleet shares one Postgres (unset REDIS_URL for the embedded default)', true)
  }
  if (typed.redisUrl !== undefined && typed.peerKey === undefined && typed.fleetSecret === undefined) {
    throw new ConfigError('PHAROS_FLEET_SECRET', undefined, 'set in fleet mode (DATABASE_URL and REDIS_URL), or PHAROS_PEER_KEY: a fleet worker has no data dir to keep a generated key in, so its identity must come from config')
  }
  if (typed.redisUrl !== undefined && typed.registryKey === undefined && typed.fleetSecret === undefined) {
    throw new ConfigError('PHAROS_REGISTRY_KEY', undefined, 'set in fleet mode (DATABASE_URL and REDIS_URL), or PHAROS_FLEET_SECRET: every worker must sign the registry of accounts with the same key, and a fleet worker has no data dir to keep a generated one in')
  }
  refusePublicSecrets(typed)
  if (typed.shutdownDrainMs >= typed.shutdownTimeoutMs) {
    throw new ConfigError('PHAROS_SHUTDOWN_DRAIN_MS', String(typed.shutdownDrainMs), `less than PHAROS_SHUTDOWN_TIMEOUT_MS (${typed.shutdownTimeoutMs}): the drain is part of the shutdown, and storage and libp2p still have to stop after it`)
  }
  if (typed.pendingUpgradesPerSource > typed.pendingUpgradesPerPrefix) {
    throw new ConfigError('PHAROS_PENDING_UPGRADES_PER_SOURCE', String(typed.pendingUpgradesPerSource), `at most PHAROS_PENDING_UPGRADES_PER_PREFIX (${typed.pendingUpgradesPerPrefix}): a source is part of its network`)
  }
  if (typed.pendingUpgradesPerPrefix > typed.maxIncomingPendingConnections) {
    throw new ConfigError('PHAROS_PENDING_UPGRADES_PER_PREFIX', String(typed.pendingUpgradesPerPrefix), `at most PHAROS_MAX_INCOMING_PENDING_CONNECTIONS (${typed.maxIncomingPendingConnections}): a network's share is part of the total`)
  }
  if (typed.minHandshakesPerSecond > typed.maxHandshakesPerSecond) {
    throw new ConfigError('PHAROS_MIN_HANDSHAKES_PER_SECOND', String(typed.minHandshakesPerSecond), `at most PHAROS_MAX_HANDSHAKES_PER_SECOND (${typed.maxHandshakesPerSecond})`)
  }
  if (typed.bitswapPeerBytesInFlight > typed.bitswapBytesInFlight) {
    throw new ConfigError('PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT', String(typed.bitswapPeerBytesInFlight), `at most PHAROS_BITSWAP_BYTES_IN_FLIGHT (${typed.bitswapBytesInFlight}): one peer's share is part of the total`)
  }
  if (typed.bitswapPeerBytesInFlight * 2 > typed.bitswapMaxWriteBufferBytes) {
    throw new ConfigError('PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT', String(typed.bitswapPeerBytesInFlight), `at most half of PHAROS_BITSWAP_MAX_WRITE_BUFFER_BYTES (${typed.bitswapMaxWriteBufferBytes}): a peer's blocks in flight sit in its stream's write buffer, with room for the messages' framing`)
  }
  return Object.freeze(typed)
}

/**
 * The value of secret key `envName` from the file its `<KEY>_FILE` names (flag over env), or
 * undefined when that is unset or empty (as the official Postgres image treats its `_FILE`
 * variables). The file is read whole, less one trailing newline (`echo … > file` and most
 * editors add one; a secret never ends in one). Setting both the key and its file is refused,
 * naming both: which should win is a guess either way.
 */
function readSecretFile (envName: string, env: Readonly<Record<string, string | undefined>>, flags: ReadonlyMap<string, string>): { key: string, path: string, value: string } | undefined {
  const key = envName + FILE_SUFFIX
  const path = flags.get(key) ?? env[key]
  if (path === undefined || path === '') return undefined
  const direct = flags.get(envName) ?? env[envName]
  if (direct !== undefined && direct !== '') {
    throw new ConfigError(key, path, `${envName} or ${key}, not both: ${envName} is set too`)
  }
  let text
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable'
    throw new ConfigError(key, path, `the path of a readable file holding ${envName} (reading it failed: ${code})`)
  }
  return { key, path, value: text.replace(/\r?\n$/, '') }
}

/**
 * Refuses a secret this repository published as a default (config/public-secrets.ts) where
 * it would be reachable: the fleet secret, from which anyone can compute this worker's key,
 * when libp2p listens or announces beyond loopback; an admin token when HTTP listens beyond
 * loopback. The message names the key, never the value.
 */
function refusePublicSecrets (config: Config): void {
  const p2pReachable = !isLoopbackHost(config.p2pHost) || config.announce.some((addr) => !isLoopbackMultiaddr(addr))
  if (config.fleetSecret !== undefined && PUBLIC_FLEET_SECRETS.has(config.fleetSecret) && p2pReachable) {
    throw new ConfigError('PHAROS_FLEET_SECRET', config.fleetSecret,
      'a secret of your own (openssl rand -base64 32; README "Run a fleet" makes a .env): this is a published default, so anyone can compute this worker\'s private key from it, and the worker listens or announces beyond loopback (PHAROS_P2P_HOST, PHAROS_ANNOUNCE)', true)
  }
  if (config.adminTokens.some((token) => PUBLIC_ADMIN_TOKENS.has(token)) && !isLoopbackHost(config.httpHost)) {
    throw new ConfigError('PHAROS_ADMIN_TOKENS', config.adminTokens.join(','),
      'tokens of your own (openssl rand -hex 24): one of these is a published default, and HTTP listens beyond loopback (PHAROS_HTTP_HOST)', true)
  }
}

/** Text of `pharos-beacon --help`: every key with its flag, default and meaning. */
export function helpText (): string {
  const lines = [
    'pharos-beacon — a Pharos beacon worker (bootstrap, relay and pinning node)',
    '',
    'Every key is an environment variable and a flag: PHAROS_HTTP_PORT=8080 or --http-port 8080.',
    'Flags override the environment. With no DATABASE_URL and REDIS_URL the worker runs embedded',
    '(PGlite in PHAROS_DATA_DIR, shared state in process).',
    '',
    'Other flags:',
    '  --help             print this text',
    '  --version          print the version (pharos-beacon <version>), then exit',
    '  --generate-key     print a new base64 ed25519 key for PHAROS_PEER_KEY and its peer ID, then exit',
    '',
    `Secret keys (marked "secret") also read their value from a file: <KEY>${FILE_SUFFIX}=/run/secrets/x`,
    'or --<flag>-file /run/secrets/x (one trailing newline is dropped; setting both is refused).',
    ''
  ]
  let group = ''
  for (const spec of Object.values(specs)) {
    if (spec.group !== group) {
      group = spec.group
      lines.push(`${group}:`)
    }
    lines.push(`  ${spec.env}  (${flagFor(spec.env)})${spec.secret === true ? `  secret; or ${spec.env}${FILE_SUFFIX}` : ''}`)
    lines.push(`      ${spec.help}`)
    lines.push(`      default: ${spec.default === undefined ? '(unset)' : spec.default === '' ? '(empty)' : spec.default}`)
  }
  return lines.join('\n') + '\n'
}
