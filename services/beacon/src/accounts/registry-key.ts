/**
 * The fleet's registry key: the one ed25519 key every worker of a fleet signs registry pages
 * with, so a peer trusts one key for the whole fleet, whichever worker answers
 * (docs/registry.md "Whose signature"). First match wins:
 *
 * 1. PHAROS_REGISTRY_KEY (or its _FILE form): a base64 protobuf ed25519 key, as
 *    `pharos-beacon --generate-key` prints;
 * 2. derived from PHAROS_FLEET_SECRET and the network by HKDF-SHA256 (every worker given the
 *    same secret computes the same key; a salt of its own keeps it unrelated to worker keys);
 * 3. embedded and single-Postgres modes: generated once and kept in the data dir
 *    (`registry-key`, mode 0600). Fleet mode without 1 or 2 is refused at start.
 */
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { dataDirKey, decodePeerKey, keyFromFleetSecret } from '../p2p/identity.ts'

const REGISTRY_KEY_FILE = 'registry-key'
/** Domain separation: never the same seed as a worker key derived from the same secret. */
const REGISTRY_KEY_SALT = 'pharos/registry-key/v1'

export type RegistryKeySource = 'config' | 'fleet-secret' | 'data-dir' | 'generated'

export interface RegistryKeyConfig {
  registryKey?: string
  fleetSecret?: string
  network: string
  dataDir: string
}

export async function deriveRegistryKey (fleetSecret: string, network: string): Promise<Ed25519PrivateKey> {
  return await keyFromFleetSecret(fleetSecret, REGISTRY_KEY_SALT, network)
}

export async function loadRegistryKey (config: RegistryKeyConfig): Promise<{ key: Ed25519PrivateKey, source: RegistryKeySource }> {
  if (config.registryKey !== undefined) return { key: decodePeerKey(config.registryKey, 'PHAROS_REGISTRY_KEY'), source: 'config' }
  if (config.fleetSecret !== undefined) return { key: await deriveRegistryKey(config.fleetSecret, config.network), source: 'fleet-secret' }
  const { key, generated } = await dataDirKey(config.dataDir, REGISTRY_KEY_FILE)
  return { key, source: generated ? 'generated' : 'data-dir' }
}
