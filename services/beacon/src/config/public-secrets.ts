/**
 * Secrets this repository has published as defaults (issue 17, item 7): every value that
 * `git log -p` shows in docker-compose.yml, the Helm chart, the README or docs/ as a
 * default or example of a worker secret. A worker's ed25519 key is derived from the fleet
 * secret, the network and its name (p2p/identity.ts), all three public for the quick start,
 * so with one of these anyone can compute the worker's private key, impersonate it as a
 * bootstrap peer and sign receipts and audit reports in its name. An admin token from this
 * list opens its /v1 API to anyone.
 *
 * The worker refuses them (loadConfig) whenever they would be reachable: the fleet secret
 * when libp2p listens or announces beyond loopback, an admin token when HTTP does. On
 * loopback alone (a laptop, tests) they are harmless and still accepted.
 */

/** PHAROS_FLEET_SECRET defaults: docker-compose.yml until issue 17. */
export const PUBLIC_FLEET_SECRETS: ReadonlySet<string> = new Set([
  'quick-start-fleet-secret-change-me-before-going-public'
])

/** PHAROS_ADMIN_TOKENS defaults: docker-compose.yml and the README's curl example until issue 17. */
export const PUBLIC_ADMIN_TOKENS: ReadonlySet<string> = new Set([
  'quick-start-admin-token-change-me',
  'change-me-admin-token-0001'
])

/** A host a listener binds to is loopback only: 127.0.0.0/8, ::1, localhost (0.0.0.0 and :: are every interface). */
export function isLoopbackHost (host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase()
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare) || bare === '::1' || bare === 'localhost' || bare === '0:0:0:0:0:0:0:1'
}

/** A multiaddr's host is loopback only (`/ip4/127.…`, `/ip6/::1`, `/dns*\/localhost`). */
export function isLoopbackMultiaddr (addr: string): boolean {
  const host = /^\/(?:ip4|ip6|dns|dns4|dns6)\/([^/]+)/.exec(addr)?.[1]
  return host !== undefined && isLoopbackHost(host)
}
