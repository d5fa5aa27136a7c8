/**
 * The seal of content keys at rest (issue 23, item 4): PHAROS_KEY_SEALING_SECRET's format is
 * checked at start, naming the key and never printing it; a sealed key opens only in its own
 * row, under its own version; a missing version is a named error, not a crash.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { ConfigError, loadConfig } from '../../src/config/load.ts'
import { ContentKeySealer, generateSealingSecret, parseSealingKeys, SealedKeyCorruptError, SealingKeyMissingError } from '../../src/keys/key-sealing.ts'

const base64Key = (fill: number): string => Buffer.alloc(32, fill).toString('base64')

describe('PHAROS_KEY_SEALING_SECRET', () => {
  it('takes versioned 32-byte keys, current first', () => {
    const config = loadConfig({ PHAROS_KEY_SEALING_SECRET: `v2:${base64Key(2)}, v1:${Buffer.alloc(32, 1).toString('base64url')}` })
    assert.deepEqual(config.keySealingSecret?.map((key) => key.version), ['v2', 'v1'])
    assert.deepEqual(config.keySealingSecret?.[1]?.key, new Uint8Array(32).fill(1))
    const generated = parseSealingKeys(generateSealingSecret())
    assert.ok(generated.ok && generated.value.length === 1 && generated.value[0]?.version === 'v1' && generated.value[0].key.length === 32)
    assert.equal(loadConfig({}).keySealingSecret, undefined, 'unset by default')
  })

  it('stops the start naming the key, without printing the value, for anything else', () => {
    const secret = base64Key(9)
    for (const bad of [
      secret, // no version
      `v1:${Buffer.alloc(16, 9).toString('base64')}`, // 16 bytes
      `v1:${Buffer.alloc(33, 9).toString('base64')}`, // 33 bytes
      'v1:correct horse battery staple', // a passphrase
      `v1:${secret},v1:${base64Key(8)}`, // a version twice
      `bad version:${secret}`,
      '',
      ','
    ]) {
      assert.throws(() => loadConfig({ PHAROS_KEY_SEALING_SECRET: bad }), (err: unknown) => {
        assert.ok(err instanceof ConfigError, bad)
        assert.equal(err.key, 'PHAROS_KEY_SEALING_SECRET')
        assert.match(err.message, /PHAROS_KEY_SEALING_SECRET=\(hidden\); allowed: a comma-separated list of <version>:<base64 of exactly 32 random bytes>/)
        if (bad.length > 0) assert.ok(!err.message.includes(secret), 'the value is not printed')
        return true
      })
    }
  })
})

describe('ContentKeySealer', () => {
  const v1 = { version: 'v1', key: new Uint8Array(randomBytes(32)) }
  const v2 = { version: 'v2', key: new Uint8Array(randomBytes(32)) }
  const plain = new Uint8Array(randomBytes(32))
  const row = { keyHash: new Uint8Array(randomBytes(32)), author: '12D3KooWAuthor' }

  it('seals under the current version with a fresh nonce each time, and opens byte-exactly', () => {
    const sealer = new ContentKeySealer([v2, v1])
    const a = sealer.seal(plain, row)
    const b = sealer.seal(plain, row)
    assert.equal(a.version, 'v2')
    assert.equal(a.sealed.length, 12 + 32 + 16, 'nonce, ciphertext, tag')
    assert.notDeepEqual(a.sealed, b.sealed, 'a fresh nonce per seal')
    assert.equal(Buffer.from(a.sealed).indexOf(Buffer.from(plain)), -1)
    assert.deepEqual(sealer.open(a, row), plain)
    // An older version still opens what it sealed.
    const old = new ContentKeySealer([v1]).seal(plain, row)
    assert.deepEqual(sealer.open(old, row), plain)
  })

  it('opens a sealed key only in its own row, under its own version', () => {
    const sealer = new ContentKeySealer([v2, v1])
    const sealed = sealer.seal(plain, row)
    const corrupt = (err: unknown): boolean => err instanceof SealedKeyCorruptError
    assert.throws(() => sealer.open(sealed, { ...row, keyHash: new Uint8Array(randomBytes(32)) }), corrupt, 'moved to another key hash')
    assert.throws(() => sealer.open(sealed, { ...row, author: '12D3KooWOther' }), corrupt, 'moved to another author')
    assert.throws(() => sealer.open({ ...sealed, version: 'v1' }, row), corrupt, 'relabelled with another version')
    const flipped = new Uint8Array(sealed.sealed)
    flipped[20] = (flipped[20] ?? 0) ^ 1
    assert.throws(() => sealer.open({ ...sealed, sealed: flipped }, row), corrupt, 'altered')
    assert.throws(() => sealer.open({ ...sealed, sealed: sealed.sealed.subarray(0, 10) }, row), corrupt, 'truncated')
  })

  it('names a missing version', () => {
    const sealed = new ContentKeySealer([v1]).seal(plain, row)
    assert.throws(() => new ContentKeySealer([v2]).open(sealed, row), (err: unknown) => err instanceof SealingKeyMissingError && err.version === 'v1')
  })
})
