/**
 * A libp2p Noise handshake from the initiator's side on a raw TCP socket, as cheaply as it can
 * be done: multistream-select to /noise, then Noise_XX_25519_ChaChaPoly_SHA256 (the Noise
 * spec, §5 and §7.5; libp2p's framing and payload, specs/noise) with a fresh Ed25519
 * identity, and then nothing: the caller hangs up. What a flooding attacker runs: it skips
 * everything a libp2p node does beyond the handshake (and does not check the worker's
 * signature), so one generator core offers several times the handshakes a libp2p node per
 * connection can (dial-child.ts), while the worker does the whole responder's work for each.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import type { Socket } from 'node:net'
import { lengthPrefixed, multistreamHeader } from './light-node.ts'

const PROTOCOL_NAME = Buffer.from('Noise_XX_25519_ChaChaPoly_SHA256')
const NOISE_PROPOSAL = lengthPrefixed('/noise\n')
const STATIC_KEY_PREFIX = Buffer.from('noise-libp2p-static-key:')
const TAG_BYTES = 16
/** libp2p's protobuf PublicKey of an Ed25519 key: field 1 (KeyType) = 1, field 2 (Data) = 32 bytes. */
const ED25519_PUBLIC_KEY_PREFIX = Buffer.from([0x08, 0x01, 0x12, 0x20])

export class NoiseFloodError extends Error {
  override readonly name = 'NoiseFloodError'
}

interface X25519Key { privateKey: KeyObject, publicKey: Buffer }

function x25519Key (): X25519Key {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  return { privateKey, publicKey: Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url') }
}

function dh (ours: X25519Key, theirs: Buffer): Buffer {
  return diffieHellman({ privateKey: ours.privateKey, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: theirs.toString('base64url') }, format: 'jwk' }) })
}

const sha256 = (...parts: Buffer[]): Buffer => parts.reduce((hash, part) => hash.update(part), createHash('sha256')).digest()
const hmac = (key: Buffer, ...parts: Buffer[]): Buffer => parts.reduce((mac, part) => mac.update(part), createHmac('sha256', key)).digest()

/** The Noise SymmetricState (§5.2) with the CipherState of its current key. */
class SymmetricState {
  private h: Buffer = Buffer.from(PROTOCOL_NAME)
  private ck: Buffer = Buffer.from(PROTOCOL_NAME)
  private k: Buffer | undefined
  private n = 0

  mixHash (data: Buffer): void {
    this.h = sha256(this.h, data)
  }

  mixKey (input: Buffer): void {
    const temp = hmac(this.ck, input)
    this.ck = hmac(temp, Buffer.from([1]))
    this.k = hmac(temp, this.ck, Buffer.from([2]))
    this.n = 0
  }

  private nonce (): Buffer {
    const nonce = Buffer.alloc(12)
    nonce.writeBigUInt64LE(BigInt(this.n++), 4)
    return nonce
  }

  encryptAndHash (plaintext: Buffer): Buffer {
    let ciphertext = plaintext
    if (this.k !== undefined) {
      const cipher = createCipheriv('chacha20-poly1305', this.k, this.nonce(), { authTagLength: TAG_BYTES })
      cipher.setAAD(this.h, { plaintextLength: plaintext.length })
      ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
    }
    this.mixHash(ciphertext)
    return ciphertext
  }

  decryptAndHash (ciphertext: Buffer): Buffer {
    if (this.k === undefined) throw new NoiseFloodError('no key to decrypt with')
    const decipher = createDecipheriv('chacha20-poly1305', this.k, this.nonce(), { authTagLength: TAG_BYTES })
    const body = ciphertext.subarray(0, ciphertext.length - TAG_BYTES)
    decipher.setAAD(this.h, { plaintextLength: body.length })
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES))
    const plaintext = Buffer.concat([decipher.update(body), decipher.final()])
    this.mixHash(ciphertext)
    return plaintext
  }

  /** What the flood need not read (the worker's payload): the hash and the nonce are kept in step. */
  skipAndHash (ciphertext: Buffer): void {
    if (this.k !== undefined) this.n++
    this.mixHash(ciphertext)
  }
}

/** A protobuf bytes field (wire type 2) with a one-byte length. */
function bytesField (field: number, value: Buffer): Buffer {
  if (value.length >= 128) throw new RangeError('a one-byte length holds < 128 bytes')
  return Buffer.concat([Buffer.from([(field << 3) | 2, value.length]), value])
}

/** Reads what the socket delivers, by frame: varint-prefixed lines, then 2-byte-prefixed Noise messages. */
class Reader {
  private buffered = Buffer.alloc(0)
  private waiting: (() => void) | undefined
  private ended: Error | undefined

  constructor (socket: Socket) {
    socket.on('data', (chunk: Buffer) => { this.buffered = Buffer.concat([this.buffered, chunk]); this.wake() })
    socket.on('close', () => { this.ended = new NoiseFloodError('the worker closed the connection mid-handshake'); this.wake() })
    socket.on('error', (err) => { this.ended = err; this.wake() })
  }

  private wake (): void {
    const waiting = this.waiting
    this.waiting = undefined
    waiting?.()
  }

  private async bytes (count: number): Promise<Buffer> {
    while (this.buffered.length < count) {
      if (this.ended !== undefined) throw this.ended
      await new Promise<void>((resolve) => { this.waiting = resolve })
    }
    const taken = this.buffered.subarray(0, count)
    this.buffered = this.buffered.subarray(count)
    return taken
  }

  /** One multistream-select message (every one here is < 128 bytes: a one-byte varint). */
  async line (): Promise<string> {
    const [length] = await this.bytes(1)
    if (length === undefined || length >= 128) throw new NoiseFloodError('unexpected multistream-select framing')
    return (await this.bytes(length)).toString()
  }

  async noiseMessage (): Promise<Buffer> {
    const length = (await this.bytes(2)).readUInt16BE(0)
    return await this.bytes(length)
  }
}

const frame = (message: Buffer): Buffer => {
  const length = Buffer.alloc(2)
  length.writeUInt16BE(message.length)
  return Buffer.concat([length, message])
}

/**
 * Runs multistream-select and the initiator's side of Noise XX on a connected `socket`,
 * with `staticKey` (an attacker reuses one) and a fresh Ed25519 identity; resolves once the
 * third handshake message is written, when the worker has all it needs to finish its side.
 */
export async function noiseHandshake (socket: Socket, staticKey: X25519Key): Promise<void> {
  const reader = new Reader(socket)
  socket.write(Buffer.concat([multistreamHeader(), NOISE_PROPOSAL]))
  if (await reader.line() !== '/multistream/1.0.0\n') throw new NoiseFloodError('the worker does not speak multistream-select 1.0.0')
  if (await reader.line() !== '/noise\n') throw new NoiseFloodError('the worker refused /noise')

  const state = new SymmetricState()
  state.mixHash(Buffer.alloc(0)) // the empty prologue
  // -> e
  const e = x25519Key()
  state.mixHash(e.publicKey)
  socket.write(frame(Buffer.concat([e.publicKey, state.encryptAndHash(Buffer.alloc(0))])))
  // <- e, ee, s, es
  const messageB = await reader.noiseMessage()
  if (messageB.length < 32 + 32 + TAG_BYTES + TAG_BYTES) throw new NoiseFloodError('the second handshake message is too short')
  const re = messageB.subarray(0, 32)
  state.mixHash(re)
  state.mixKey(dh(e, re))
  const encryptedRs = messageB.subarray(32, 32 + 32 + TAG_BYTES)
  // The worker's static key is needed for es: the one thing the flood must decrypt.
  const rs = state.decryptAndHash(encryptedRs)
  state.mixKey(dh(e, rs))
  state.skipAndHash(messageB.subarray(32 + 32 + TAG_BYTES))
  // -> s, se, with the payload: a fresh identity's key and its signature of our static key
  const encryptedS = state.encryptAndHash(staticKey.publicKey)
  state.mixKey(dh(staticKey, re))
  const identity = generateKeyPairSync('ed25519')
  const identityKey = Buffer.concat([ED25519_PUBLIC_KEY_PREFIX, Buffer.from(identity.publicKey.export({ format: 'jwk' }).x ?? '', 'base64url')])
  const identitySig = sign(null, Buffer.concat([STATIC_KEY_PREFIX, staticKey.publicKey]), identity.privateKey)
  const payload = Buffer.concat([bytesField(1, identityKey), bytesField(2, identitySig)])
  socket.write(frame(Buffer.concat([encryptedS, state.encryptAndHash(payload)])))
}

export { x25519Key }
export type { X25519Key }
