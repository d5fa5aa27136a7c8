/**
 * Limits for workers under test that a public worker needs but a test machine defeats.
 * Every test peer dials from 127.0.0.1, one source in one /24, so the per-source admission
 * limits would refuse a test's own peers. A worker in the test's process, or on the test
 * machine's two shared cores, sees the test's own load as event-loop delay, so shedding on
 * it (new handshakes, HTTP requests) would refuse them at random and take the worker out of
 * the fleet's ready set; and a starved peer is slow to make progress in its handshake. admission-libp2p.test.ts and http-load-shedding.test.ts set their
 * own values to test exactly these.
 */
export const LOOPBACK_TEST_ENV: Readonly<Record<string, string>> = Object.freeze({
  PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND: '1000',
  PHAROS_PENDING_UPGRADES_PER_SOURCE: '256',
  PHAROS_PENDING_UPGRADES_PER_PREFIX: '256',
  PHAROS_HANDSHAKE_LOOP_DELAY_TARGET_MS: '0',
  // Test peers' own processes are starved too (200 peers starting in one process on two
  // cores): their first bytes can come seconds after the connect. The overall upgrade
  // timeout still bounds them; admission-libp2p.test.ts tests the progress rules.
  PHAROS_UPGRADE_FIRST_MESSAGE_TIMEOUT_MS: '10000',
  PHAROS_UPGRADE_MIN_BYTES_PER_SECOND: '0',
  PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0'
})
