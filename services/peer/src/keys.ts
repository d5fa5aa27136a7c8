/**
 * A peer's identity: an ed25519 key (the only key type a Pharos network admits), its key
 * file, and the adapter that lets the protocol core sign entries with it.
 *
 * Key file (JSON, mode 0600):
 *
 *   { "peerId": "12D3KooW…", "privateKey": "<base64 of the libp2p protobuf private key>" }
 *
 * `privateKey` is the same encoding as the beacon's PHAROS_PEER_KEY, so a key moves between
 * the two. `peerId` is redundant and checked on load: a file whose two fields disagree was
 * edited by hand or damaged, and is refused rather than used as somebody else.
 */
import { readFile } from 'node:fs/promises'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { ed25519Signer } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer } from '@pharos/protocol/log/index.ts'
import { KeyFileError, SymlinkTargetError } from './errors.ts'
import { writeFileNoFollow } from './safe-write.ts'

/** The JSON shape of a key file. */
export interface KeyFile {
  peerId: string
  privateKey: string
}

/** A fresh ed25519 identity. */
export async function generateKey (): Promise<Ed25519PrivateKey> {
  return await generateKeyPair('Ed25519')
}

/** The key file's JSON for a key. */
export function encodeKeyFile (key: Ed25519PrivateKey): KeyFile {
  return { peerId: peerIdFromPrivateKey(key).toString(), privateKey: Buffer.from(privateKeyToProtobuf(key)).toString('base64') }
}

/** Decodes a key file's JSON; `file` only names it in errors. */
export function decodeKeyFile (text: string, file = 'key file'): Ed25519PrivateKey {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new KeyFileError(file, 'not JSON', { cause: err })
  }
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as Partial<KeyFile>).privateKey !== 'string' || typeof (parsed as Partial<KeyFile>).peerId !== 'string') {
    throw new KeyFileError(file, 'expected { "peerId": "…", "privateKey": "<base64 protobuf>" }')
  }
  const { peerId, privateKey } = parsed as KeyFile
  let key
  try {
    key = privateKeyFromProtobuf(Buffer.from(privateKey, 'base64'))
  } catch (err) {
    throw new KeyFileError(file, 'privateKey is not a base64 protobuf-encoded libp2p private key', { cause: err })
  }
  if (key.type !== 'Ed25519') throw new KeyFileError(file, `an ed25519 key is required, not ${key.type}`)
  const actual = peerIdFromPrivateKey(key).toString()
  if (actual !== peerId) throw new KeyFileError(file, `peerId ${peerId} does not match the private key's peer ID ${actual}`)
  return key
}

/**
 * Writes a key file readable by its owner only: mode 0600 always, also when it replaces a
 * file that had another mode. Refuses to replace an existing file unless `overwrite`: a lost
 * key is a lost identity (and its whole log). Never writes through a symbolic link: a link at
 * `file` is refused (a planted link would send the private key wherever it points).
 */
export async function saveKeyFile (file: string, key: Ed25519PrivateKey, options: { overwrite?: boolean } = {}): Promise<void> {
  const text = JSON.stringify(encodeKeyFile(key), null, 2) + '\n'
  try {
    await writeFileNoFollow(file, text, { mode: 0o600, overwrite: options.overwrite === true })
  } catch (err) {
    if (err instanceof SymlinkTargetError) throw new KeyFileError(file, 'is a symbolic link; refusing to write a key through it', { cause: err })
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw new KeyFileError(file, 'already exists (refusing to overwrite a key)', { cause: err })
    throw new KeyFileError(file, `cannot write: ${code ?? String(err)}`, { cause: err })
  }
}

/** Reads a key file written by `saveKeyFile` (or by hand in the same shape). */
export async function loadKeyFile (file: string): Promise<Ed25519PrivateKey> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new KeyFileError(file, code === 'ENOENT' ? 'does not exist' : `cannot read: ${code ?? String(err)}`, { cause: err })
  }
  return decodeKeyFile(text, file)
}

/** The protocol core's signer for a libp2p ed25519 key: entries, envelopes and allow-lists. */
export function signerFor (key: Ed25519PrivateKey): Ed25519Signer {
  return ed25519Signer(peerIdFromPrivateKey(key).toString(), key)
}
