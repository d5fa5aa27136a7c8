/**
 * The encryption format of private posts (docs/private-posts.md): version byte, fresh random
 * 12-byte IV per object, AES-256-GCM ciphertext and 16-byte tag, through WebCrypto; altered
 * bytes, another key, or a file passed off as a body do not decrypt.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { newContentKey, open, seal, SEALED_OVERHEAD, SEALED_VERSION } from '../src/content-cipher.ts'
import { ContentDecryptionError } from '../src/errors.ts'

const plaintext = new TextEncoder().encode('a private post body')

describe('content cipher', () => {
  it('seals as version ‖ IV ‖ ciphertext ‖ tag with a fresh IV each time, and opens back byte for byte', async () => {
    const key = newContentKey()
    assert.equal(key.length, 32)
    const a = await seal(key, plaintext, 'body')
    const b = await seal(key, plaintext, 'body')
    assert.equal(a.length, plaintext.length + SEALED_OVERHEAD)
    assert.equal(a[0], SEALED_VERSION)
    assert.notDeepEqual(a.subarray(1, 13), b.subarray(1, 13), 'a fresh IV per object')
    assert.deepEqual(await open(key, a, 'body', 'test'), plaintext)
    // The same plaintext under Node's WebCrypto is AES-GCM as any implementation reads it.
    const raw = await globalThis.crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['decrypt'])
    const decrypted = await globalThis.crypto.subtle.decrypt({ name: 'AES-GCM', iv: a.subarray(1, 13), additionalData: new TextEncoder().encode('pharos/private-body/1') }, raw, a.subarray(13))
    assert.deepEqual(new Uint8Array(decrypted), plaintext)
  })

  it('refuses altered bytes, another key, another kind and another version', async () => {
    const key = newContentKey()
    const sealed = await seal(key, plaintext, 'file')
    const altered = sealed.slice()
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 1
    const otherVersion = sealed.slice()
    otherVersion[0] = 2
    for (const [what, attempt] of [
      ['altered', async () => await open(key, altered, 'file', 'x')],
      ['another key', async () => await open(newContentKey(), sealed, 'file', 'x')],
      ['a file as a body', async () => await open(key, sealed, 'body', 'x')],
      ['another version', async () => await open(key, otherVersion, 'file', 'x')],
      ['too short', async () => await open(key, sealed.subarray(0, SEALED_OVERHEAD - 1), 'file', 'x')]
    ] as const) {
      await assert.rejects(attempt, ContentDecryptionError, what)
    }
  })
})
