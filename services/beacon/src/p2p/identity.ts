import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
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

/**
 * The worker's identity: the configured key, or one generated once and kept in the data
 * dir (mode 0600), so a restarted embedded worker keeps its peer ID.
 */
export async function loadPeerKey (configured: string | undefined, dataDir: string): Promise<{ key: Ed25519PrivateKey, source: 'config' | 'data-dir' | 'generated' }> {
  if (configured !== undefined) return { key: decodePeerKey(configured), source: 'config' }
  let generated: Ed25519PrivateKey | undefined
  const stored = await readOrCreateSecret(dataDir, PEER_KEY_FILE, async () => {
    generated = await generateKeyPair('Ed25519')
    return encodePeerKey(generated)
  })
  if (generated !== undefined) return { key: generated, source: 'generated' }
  return { key: decodePeerKey(stored.value, stored.file), source: 'data-dir' }
}
