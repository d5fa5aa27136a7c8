import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { ConfigError, loadConfig, parseCommandLine } from '../../src/config/load.ts'
import { withConfigTable } from '../../src/config/docs.ts'
import { PUBLIC_ADMIN_TOKENS, PUBLIC_FLEET_SECRETS } from '../../src/config/public-secrets.ts'
import { schema } from '../../src/config/schema.ts'
import type { KeySpec } from '../../src/config/schema.ts'

describe('config', () => {
  it('has a default for every key that its own parser accepts', () => {
    const config = loadConfig({})
    for (const [key, spec] of Object.entries(schema)) {
      if (spec.default === undefined) assert.equal(key in config, false, `${key} stays unset`)
      else assert.ok(key in config, `${key} has a value`)
    }
    assert.equal(config.maxConnections, 10_000)
    assert.equal(config.wsMaxPayloadBytes, 1024 * 1024)
    assert.equal(config.connectionMonitorIntervalMs, 0, 'the connection monitor is off by default')
    assert.deepEqual(config.announce, [])
    assert.ok(Object.isFrozen(config))
  })

  it('parses lists and lets flags override env', () => {
    const { values } = parseCommandLine(['--max-connections=42', '--announce', '/dns4/a.example/tcp/4001,/dns4/a.example/tcp/4002/ws'])
    const config = loadConfig({ PHAROS_MAX_CONNECTIONS: '7', PHAROS_ADMIN_TOKENS: 'aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb' }, values)
    assert.equal(config.maxConnections, 42)
    assert.deepEqual(config.announce, ['/dns4/a.example/tcp/4001', '/dns4/a.example/tcp/4002/ws'])
    assert.deepEqual(config.adminTokens, ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb'])
  })

  it('names the key, the value and what is allowed', () => {
    assert.throws(() => loadConfig({ PHAROS_RELAY_MAX_RESERVATIONS_PER_IP: '-1' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.key, 'PHAROS_RELAY_MAX_RESERVATIONS_PER_IP')
      assert.equal(err.value, '-1')
      assert.equal(err.allowed, 'an integer from 0 to 1000000')
      return true
    })
    assert.throws(() => loadConfig({ PHAROS_ADMIN_TOKENS: 'short' }), /PHAROS_ADMIN_TOKENS=\(hidden\)/)
  })

  it('refuses a peer drain that does not fit in the shutdown deadline', () => {
    assert.throws(() => loadConfig({ PHAROS_SHUTDOWN_DRAIN_MS: '15000', PHAROS_SHUTDOWN_TIMEOUT_MS: '15000' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.key, 'PHAROS_SHUTDOWN_DRAIN_MS')
      return true
    })
    assert.equal(loadConfig({ PHAROS_SHUTDOWN_DRAIN_MS: '14999', PHAROS_SHUTDOWN_TIMEOUT_MS: '15000' }).shutdownDrainMs, 14_999)
  })

  it('refuses a Bitswap peer share larger than the total or than half its stream\'s write buffer', () => {
    for (const env of [
      { PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT: String(8 * 1024 * 1024), PHAROS_BITSWAP_BYTES_IN_FLIGHT: String(4 * 1024 * 1024) },
      { PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT: String(8 * 1024 * 1024), PHAROS_BITSWAP_MAX_WRITE_BUFFER_BYTES: String(12 * 1024 * 1024) }
    ]) {
      assert.throws(() => loadConfig(env), (err: unknown) => {
        assert.ok(err instanceof ConfigError)
        assert.equal(err.key, 'PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT')
        return true
      })
    }
    assert.equal(loadConfig({ PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT: String(8 * 1024 * 1024), PHAROS_BITSWAP_MAX_WRITE_BUFFER_BYTES: String(16 * 1024 * 1024) }).bitswapPeerBytesInFlight, 8 * 1024 * 1024)
  })
})

describe('secrets this repository published as defaults (issue 17, item 7)', () => {
  const fleetSecret = [...PUBLIC_FLEET_SECRETS][0] ?? assert.fail()
  const adminToken = [...PUBLIC_ADMIN_TOKENS][0] ?? assert.fail()
  const refused = (key: string) => (err: unknown): boolean => err instanceof ConfigError && err.key === key && !err.message.includes(fleetSecret) && !err.message.includes(adminToken)

  it('refuses the public fleet secret when libp2p listens or announces beyond loopback, naming the key', () => {
    // PHAROS_P2P_HOST defaults to 0.0.0.0: every interface.
    assert.throws(() => loadConfig({ PHAROS_FLEET_SECRET: fleetSecret }), refused('PHAROS_FLEET_SECRET'))
    assert.throws(() => loadConfig({ PHAROS_FLEET_SECRET: fleetSecret, PHAROS_P2P_HOST: '10.0.0.5' }), refused('PHAROS_FLEET_SECRET'))
    assert.throws(() => loadConfig({ PHAROS_FLEET_SECRET: fleetSecret, PHAROS_P2P_HOST: '127.0.0.1', PHAROS_ANNOUNCE: '/ip4/127.0.0.1/tcp/4001,/dns4/beacon.example.com/tcp/4001' }), refused('PHAROS_FLEET_SECRET'))
    for (const secret of PUBLIC_FLEET_SECRETS) assert.throws(() => loadConfig({ PHAROS_FLEET_SECRET: secret, PHAROS_P2P_HOST: '::' }), refused('PHAROS_FLEET_SECRET'))
  })

  it('accepts it on loopback alone, and accepts a secret of one\'s own anywhere', () => {
    assert.equal(loadConfig({ PHAROS_FLEET_SECRET: fleetSecret, PHAROS_P2P_HOST: '127.0.0.1' }).fleetSecret, fleetSecret)
    assert.equal(loadConfig({ PHAROS_FLEET_SECRET: fleetSecret, PHAROS_P2P_HOST: '::1', PHAROS_ANNOUNCE: '/ip4/127.0.0.1/tcp/4001,/ip6/::1/tcp/4002/ws,/dns4/localhost/tcp/4001' }).fleetSecret, fleetSecret)
    const own = 'my-own-fleet-secret-of-more-than-32-characters'
    assert.equal(loadConfig({ PHAROS_FLEET_SECRET: own, PHAROS_ANNOUNCE: '/dns4/beacon.example.com/tcp/4001' }).fleetSecret, own)
  })

  it('refuses a public admin token when HTTP listens beyond loopback', () => {
    for (const token of PUBLIC_ADMIN_TOKENS) {
      assert.throws(() => loadConfig({ PHAROS_ADMIN_TOKENS: `my-own-admin-token-0123,${token}`, PHAROS_HTTP_HOST: '0.0.0.0' }), refused('PHAROS_ADMIN_TOKENS'))
      assert.deepEqual(loadConfig({ PHAROS_ADMIN_TOKENS: token }).adminTokens, [token], 'HTTP on 127.0.0.1 (the default)')
    }
  })
})

describe('README configuration table', () => {
  it('is the one generated from the schema', async () => {
    const readme = await readFile(new URL('../../../../README.md', import.meta.url), 'utf8')
    assert.equal(readme, withConfigTable(readme), 'run `node scripts/write-config-table.ts`')
  })
})

describe('secret keys from files (<KEY>_FILE, issue 20)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pharos-secret-files-'))
  let files = 0
  const secretFile = (text: string): string => {
    const path = join(dir, `secret-${files++}`)
    writeFileSync(path, text)
    return path
  }
  /** A valid value of every secret key, and what else it needs to load. */
  const samples: Record<string, { value: string, with?: Record<string, string> }> = {
    PHAROS_ADMIN_TOKENS: { value: 'token-from-a-file-0001,token-from-a-file-0002' },
    DATABASE_URL: { value: 'postgres://pharos:p%40ss@db.example:5432/pharos' },
    REDIS_URL: { value: 'redis://:hunter22@redis.example:6379', with: { DATABASE_URL: 'postgres://pharos@db.example/pharos', PHAROS_FLEET_SECRET: 'a-fleet-secret-of-32-characters-or-more' } },
    PHAROS_PIN_TOKENS: { value: 'app:pin-token-from-a-file-01' },
    PHAROS_PEER_KEY: { value: 'CAESQKj0rK3+example+key+base64+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
    PHAROS_FLEET_SECRET: { value: 'a-fleet-secret-of-32-characters-or-more' },
    PHAROS_KEY_SEALING_SECRET: { value: `v2:${Buffer.alloc(32, 2).toString('base64')},v1:${Buffer.alloc(32, 1).toString('base64url')}` },
    PHAROS_REGISTRY_KEY: { value: 'CAESQKj0rK3+example+key+base64+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
    PHAROS_ACCOUNTS_SOURCE: { value: 'https://registry:s3cret@accounts.example/accounts.json' }
  }
  const secretKeys = Object.values(schema).filter((spec: KeySpec<unknown>) => spec.secret === true).map((spec) => spec.env)

  it('covers every secret key of the schema', () => {
    assert.deepEqual(Object.keys(samples).sort(), [...secretKeys].sort(), 'a sample for every secret key (and only those)')
  })

  it('loads every secret key from the file <KEY>_FILE names, less one trailing newline, as from the key itself', () => {
    for (const key of secretKeys) {
      const { value, with: others = {} } = samples[key] ?? assert.fail(key)
      const direct = loadConfig({ ...others, [key]: value })
      for (const text of [value, `${value}\n`, `${value}\r\n`]) {
        assert.deepEqual(loadConfig({ ...others, [`${key}_FILE`]: secretFile(text) }), direct, `${key}_FILE holding ${JSON.stringify(text.slice(value.length))} after the value`)
      }
      // Only one newline is the editor's: a second is part of the value (which the fleet secret refuses).
      if (key === 'PHAROS_FLEET_SECRET') assert.throws(() => loadConfig({ [`${key}_FILE`]: secretFile(`${value}\n\n`) }), /PHAROS_FLEET_SECRET=\(hidden\).*read from PHAROS_FLEET_SECRET_FILE=/)
    }
  })

  it('takes the file from a flag too: --fleet-secret-file', () => {
    const path = secretFile(`${samples.PHAROS_FLEET_SECRET?.value ?? ''}\n`)
    const { values } = parseCommandLine(['--fleet-secret-file', path])
    assert.equal(loadConfig({}, values).fleetSecret, samples.PHAROS_FLEET_SECRET?.value)
  })

  it('refuses a key set both directly and from a file, naming both; an empty one counts as unset', () => {
    const path = secretFile('token-from-a-file-0001')
    for (const [env, flags] of [
      [{ PHAROS_ADMIN_TOKENS: 'token-from-the-env-001', PHAROS_ADMIN_TOKENS_FILE: path }, new Map<string, string>()],
      [{ PHAROS_ADMIN_TOKENS: 'token-from-the-env-001' }, parseCommandLine(['--admin-tokens-file', path]).values]
    ] as const) {
      assert.throws(() => loadConfig(env, flags), (err: unknown) => {
        assert.ok(err instanceof ConfigError)
        assert.equal(err.key, 'PHAROS_ADMIN_TOKENS_FILE')
        assert.match(err.message, /PHAROS_ADMIN_TOKENS or PHAROS_ADMIN_TOKENS_FILE, not both/)
        assert.doesNotMatch(err.message, /token-from/, 'no secret in the message')
        return true
      })
    }
    assert.deepEqual(loadConfig({ PHAROS_ADMIN_TOKENS: '', PHAROS_ADMIN_TOKENS_FILE: path }).adminTokens, ['token-from-a-file-0001'])
    assert.deepEqual(loadConfig({ PHAROS_ADMIN_TOKENS: 'token-from-the-env-001', PHAROS_ADMIN_TOKENS_FILE: '' }).adminTokens, ['token-from-the-env-001'])
  })

  it('refuses a file it cannot read, naming the key and the path', () => {
    const missing = join(dir, 'no-such-secret')
    assert.throws(() => loadConfig({ PHAROS_FLEET_SECRET_FILE: missing }), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.key, 'PHAROS_FLEET_SECRET_FILE')
      assert.equal(err.value, missing)
      assert.match(err.message, new RegExp(`PHAROS_FLEET_SECRET_FILE="${missing}".*ENOENT`))
      return true
    })
    assert.throws(() => loadConfig({ DATABASE_URL_FILE: dir }), /DATABASE_URL_FILE=.*EISDIR/)
  })

  it('accepts _FILE only for secret keys', () => {
    assert.throws(() => parseCommandLine(['--http-port-file', '/tmp/x']), (err: unknown) => err instanceof ConfigError && err.key === '--http-port-file')
    assert.equal(loadConfig({ PHAROS_HTTP_PORT_FILE: '/nonexistent' }).httpPort, 8080, 'not a key: ignored like any other unknown variable')
  })

  it('stops pharos-beacon at start with exit code 78 and one line naming both keys', async () => {
    const path = secretFile('a-fleet-secret-of-32-characters-or-more\n')
    const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url))
    const child = spawnSync(process.execPath, [main], {
      env: { PATH: process.env.PATH, PHAROS_DATA_DIR: join(dir, 'data'), PHAROS_FLEET_SECRET: 'a-fleet-secret-of-32-characters-or-more', PHAROS_FLEET_SECRET_FILE: path },
      encoding: 'utf8',
      timeout: 60_000
    })
    assert.equal(child.status, 78, child.stderr)
    assert.equal(child.stderr.trim().split('\n').length, 1, child.stderr)
    assert.match(child.stderr, /^pharos-beacon: invalid configuration: PHAROS_FLEET_SECRET_FILE=.*PHAROS_FLEET_SECRET or PHAROS_FLEET_SECRET_FILE, not both/)
  })
})
