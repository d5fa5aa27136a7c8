import { hkdfSync } from 'node:crypto'
import { hostname } from 'node:os'
import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { ed25519Signer } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer } from '@pharos/protocol/log/index.ts'
import { ConfigError } from '../config/load.ts'
import { readOrCreateSecret } from '../storage/data-dir-secret.ts'

const PEER_KEY_FILE = 'peer-key'

/** Decodes PHAROS_PEER_KEY: base64 protobuf, and ed25519 only (the network's one key type). */
export function decodePeerKey (base64: string, key = 'PHAROS_PEER_KEY'): Ed25519PrivateKey {
  let decoded
  try {
    decoded = privateKeyFromProtobuf(Buffer.from(base64, 'base64'))
  } catch {
    throw new ConfigError(key, base64, 'a base64 protobuf-encoded ed25519 private key (pharos-beacon --generate-key prints one)', true)
  }
  if (decoded.type !== 'Ed25519') throw new ConfigError(key, base64, `an ed25519 key, not ${decoded.type}`, true)
  return decoded
}

export function encodePeerKey (key: Ed25519PrivateKey): string {
  return Buffer.from(privateKeyToProtobuf(key)).toString('base64')
}

/** Domain separation for derived worker keys: a new scheme gets a new salt, never the same keys. */
const WORKER_KEY_SALT = 'pharos/worker-key/v1'

/**
 * A worker's ed25519 key from the fleet secret: HKDF-SHA256 over the secret, with the
 * network and worker name as info, gives the 32-byte seed. The same three inputs always
 * give the same peer ID, so a replaced pod keeps its identity without a disk; different
 * names (or networks) give unrelated keys.
 */
export async function deriveWorkerKey (fleetSecret: string, network: string, workerName: string): Promise<Ed25519PrivateKey> {
  return await keyFromFleetSecret(fleetSecret, WORKER_KEY_SALT, `${network}/${workerName}`)
}

/** An ed25519 key derived from the fleet secret by HKDF-SHA256 under `salt` and `info`: every worker given the secret computes the same one. */
export async function keyFromFleetSecret (fleetSecret: string, salt: string, info: string): Promise<Ed25519PrivateKey> {
  const seed = new Uint8Array(hkdfSync('sha256', Buffer.from(fleetSecret, 'utf8'), salt, info, 32))
  return await generateKeyPairFromSeed('Ed25519', seed)
}

/** An ed25519 key generated once into `<dataDir>/<file>` (mode 0600) and read back from it after; `generated` says which. */
export async function dataDirKey (dataDir: string, file: string): Promise<{ key: Ed25519PrivateKey, generated: boolean }> {
  let generated: Ed25519PrivateKey | undefined
  const stored = await readOrCreateSecret(dataDir, file, async () => {
    generated = await generateKeyPair('Ed25519')
    return encodePeerKey(generated)
  })
  if (generated !== undefined) return { key: generated, generated: true }
  return { key: decodePeerKey(stored.value, stored.file), generated: false }
}

/** PHAROS_WORKER_NAME, else the host name (a StatefulSet pod or compose service name). */
export function workerNameOf (configured: string | undefined): string {
  return configured ?? hostname()
}

export type PeerKeySource = 'config' | 'fleet-secret' | 'data-dir' | 'generated'

export interface PeerKeyConfig {
  peerKey?: string
  fleetSecret?: string
  network: string
  workerName: string
  dataDir: string
}

/**
 * The worker's identity, first match wins: PHAROS_PEER_KEY; a key derived from
 * PHAROS_FLEET_SECRET and the worker name; or (embedded and single-Postgres modes only,
 * config validation refuses fleet mode without one of the first two) a key generated once
 * and kept in the data dir (mode 0600), so a restarted worker keeps its peer ID.
 */
export async function loadPeerKey (config: PeerKeyConfig): Promise<{ key: Ed25519PrivateKey, source: PeerKeySource }> {
  if (config.peerKey !== undefined) return { key: decodePeerKey(config.peerKey), source: 'config' }
  if (config.fleetSecret !== undefined) return { key: await deriveWorkerKey(config.fleetSecret, config.network, config.workerName), source: 'fleet-secret' }
  const { key, generated } = await dataDirKey(config.dataDir, PEER_KEY_FILE)
  return { key, source: generated ? 'generated' : 'data-dir' }
}

/** The worker's signer for statements anyone can check against its peer ID (audit reports, receipts). */
export function workerSigner (key: Ed25519PrivateKey): Ed25519Signer {
  return ed25519Signer(peerIdFromPrivateKey(key).toString(), key)
}
