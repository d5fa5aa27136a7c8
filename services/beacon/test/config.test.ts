import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { ConfigError, loadConfig, parseCommandLine } from '../src/config/load.ts'
import { withConfigTable } from '../src/config/docs.ts'
import { PUBLIC_ADMIN_TOKENS, PUBLIC_FLEET_SECRETS } from '../src/config/public-secrets.ts'
import { schema } from '../src/config/schema.ts'

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
    const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8')
    assert.equal(readme, withConfigTable(readme), 'run `node scripts/write-config-table.ts`')
  })
})
