/**
 * `params.enckey` of a private post (issue 23): the key hash the key exchange uses (SHA-256 of
 * the key, `keyHashOf`), as a base58btc sha2-256 multihash, "z…" as in the Solcial notes.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { base58btc } from 'multiformats/bases/base58'
import { decodeKeyHashParam, encodeKeyHashParam, keyHashOf } from '../src/log/index.ts'

describe('params.enckey', () => {
  it('carries the SHA-256 of the key as a base58btc multihash, and reads back to it', async () => {
    const keyHash = await keyHashOf(new Uint8Array(32).fill(9))
    const param = encodeKeyHashParam(keyHash)
    assert.match(param, /^zQm/, 'base58btc multibase of a sha2-256 multihash (0x12 0x20 …)')
    assert.deepEqual(decodeKeyHashParam(param), keyHash)
  })

  it('refuses what is not a base58btc sha2-256 multihash of 32 bytes', async () => {
    const keyHash = await keyHashOf(new Uint8Array(32))
    const param = encodeKeyHashParam(keyHash)
    for (const value of [undefined, 7, '', param.slice(1), param.slice(0, -2), `z${'1'.repeat(200)}`, base58btc.encode(Uint8Array.of(0x13, 0x20, ...keyHash)), base58btc.encode(keyHash)]) {
      assert.equal(decodeKeyHashParam(value), undefined, String(value))
    }
    assert.throws(() => encodeKeyHashParam(keyHash.subarray(1)), RangeError)
  })
})
