/**
 * Admission limits for workers under test. Every test peer dials from 127.0.0.1, one source
 * in one /24, so the per-source limits a public worker needs would refuse a test's own
 * peers; and a worker in the test's process (or on the test machine's shared cores) sees
 * the test's own load as event-loop delay, so shedding on it would refuse them at random.
 * admission-libp2p.test.ts sets its own limits to test exactly these.
 */
export const LOOPBACK_ADMISSION_ENV: Readonly<Record<string, string>> = Object.freeze({
  PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND: '1000',
  PHAROS_PENDING_UPGRADES_PER_SOURCE: '256',
  PHAROS_PENDING_UPGRADES_PER_PREFIX: '256',
  PHAROS_HANDSHAKE_LOOP_DELAY_TARGET_MS: '0'
})
