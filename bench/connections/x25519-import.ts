/**
 * Micro-benchmark behind docs/upstream.md, "@libp2p/noise 17.0.3": what importing an
 * X25519 key costs from DER (as stock @libp2p/noise does on every Diffie-Hellman) and from JWK,
 * and an ephemeral key's life in a handshake the stock way and the patched way.
 * `node bench/connections/x25519-import.ts` (under Node 20: the same code as .mjs).
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto'

// The DER prefixes @libp2p/noise puts before raw X25519 keys (dist/src/crypto/index.js).
const PKCS8_PREFIX = Buffer.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20])
const SPKI_PREFIX = Buffer.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00])
const ROUNDS = 5000

const ours = generateKeyPairSync('x25519')
const theirs = generateKeyPairSync('x25519')
const rawPrivate = ours.privateKey.export({ type: 'pkcs8', format: 'der' }).subarray(PKCS8_PREFIX.length)
const rawPublic = theirs.publicKey.export({ type: 'spki', format: 'der' }).subarray(SPKI_PREFIX.length)

const cases: Array<[string, () => unknown]> = [
  ['public key from DER', () => createPublicKey({ key: Buffer.concat([SPKI_PREFIX, rawPublic]), type: 'spki', format: 'der' })],
  ['public key from JWK', () => createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: rawPublic.toString('base64url') }, format: 'jwk' })],
  ['private key from DER', () => createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, rawPrivate]), type: 'pkcs8', format: 'der' })],
  ['private key from JWK', () => createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', x: '', d: rawPrivate.toString('base64url') }, format: 'jwk' })],
  ['the DH itself', () => diffieHellman({ publicKey: theirs.publicKey, privateKey: ours.privateKey })],
  // An ephemeral key as a handshake uses it: made, then two Diffie-Hellmans.
  ['ephemeral key + 2 DH, stock (DER out, DER in each time)', () => {
    const key = generateKeyPairSync('x25519', { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } })
    for (let i = 0; i < 2; i++) diffieHellman({ publicKey: createPublicKey({ key: Buffer.concat([SPKI_PREFIX, rawPublic]), type: 'spki', format: 'der' }), privateKey: createPrivateKey({ key: key.privateKey, type: 'pkcs8', format: 'der' }) })
  }],
  ['ephemeral key + 2 DH, patched (one JWK export, KeyObject kept)', () => {
    const key = generateKeyPairSync('x25519')
    key.privateKey.export({ format: 'jwk' })
    for (let i = 0; i < 2; i++) diffieHellman({ publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: rawPublic.toString('base64url') }, format: 'jwk' }), privateKey: key.privateKey })
  }]
]
process.stdout.write(`Node ${process.version}, OpenSSL ${process.versions.openssl}\n`)
for (const [label, run] of cases) {
  run()
  const started = performance.now()
  for (let i = 0; i < ROUNDS; i++) run()
  process.stdout.write(`${label}: ${((performance.now() - started) / ROUNDS * 1000).toFixed(1)} µs\n`)
}
