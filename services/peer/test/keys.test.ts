/**
 * Key files and the signer adapter: a key survives a save/load round trip with its peer ID,
 * is written readable by its owner only, is never overwritten by accident, and a damaged or
 * foreign file is refused with a KeyFileError that says what is wrong.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { FEED_POST_ACTION, signEntry, verifyEntry } from '@pharos/protocol/log/index.ts'
import { CID } from 'multiformats/cid'
import { KeyFileError } from '../src/errors.ts'
import { decodeKeyFile, encodeKeyFile, generateKey, loadKeyFile, saveKeyFile, signerFor } from '../src/keys.ts'

const dir = async (): Promise<string> => await mkdtemp(join(tmpdir(), 'pharos-peer-keys-'))
const CONTENT = CID.parse('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')

describe('key files', () => {
  it('round-trips a key with its peer ID, written with mode 0600', async () => {
    const file = join(await dir(), 'key.json')
    const key = await generateKey()
    await saveKeyFile(file, key)
    const json = JSON.parse(await readFile(file, 'utf8'))
    assert.deepEqual(Object.keys(json).sort(), ['peerId', 'privateKey'])
    assert.equal(json.peerId, peerIdFromPrivateKey(key).toString())
    assert.deepEqual(new Uint8Array(Buffer.from(json.privateKey, 'base64')), privateKeyToProtobuf(key))
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    const loaded = await loadKeyFile(file)
    assert.ok(loaded.equals(key))
  })

  it('refuses to overwrite an existing key file unless asked to', async () => {
    const file = join(await dir(), 'key.json')
    const first = await generateKey()
    await saveKeyFile(file, first)
    await assert.rejects(saveKeyFile(file, await generateKey()), (err: unknown) => err instanceof KeyFileError && /already exists/.test(err.message))
    assert.ok((await loadKeyFile(file)).equals(first), 'the first key is still there')
    const second = await generateKey()
    await saveKeyFile(file, second, { overwrite: true })
    assert.ok((await loadKeyFile(file)).equals(second))
  })

  it('refuses missing, malformed, mismatched and non-ed25519 key files', async () => {
    const folder = await dir()
    await assert.rejects(loadKeyFile(join(folder, 'absent.json')), (err: unknown) => err instanceof KeyFileError && /does not exist/.test(err.message))
    const key = await generateKey()
    const other = await generateKey()
    const cases: Array<[string, RegExp]> = [
      ['not json', /not JSON/],
      ['{"peerId": 1}', /expected \{/],
      [JSON.stringify({ peerId: 'x', privateKey: 'AAAA' }), /not a base64 protobuf/],
      [JSON.stringify({ ...encodeKeyFile(key), peerId: peerIdFromPrivateKey(other).toString() }), /does not match/],
      [JSON.stringify({ peerId: 'x', privateKey: Buffer.from(privateKeyToProtobuf(await generateKeyPair('secp256k1'))).toString('base64') }), /ed25519 key is required, not secp256k1/]
    ]
    for (const [text, pattern] of cases) {
      const file = join(folder, 'bad.json')
      await writeFile(file, text)
      await assert.rejects(loadKeyFile(file), (err: unknown) => err instanceof KeyFileError && pattern.test(err.message) && err.file === file, text)
    }
    assert.throws(() => decodeKeyFile('[]'), KeyFileError)
  })

  it('adapts a libp2p key to the protocol signer: entries it signs verify under its peer ID', async () => {
    const key = await generateKey()
    const signer = signerFor(key)
    assert.equal(signer.peerId, peerIdFromPrivateKey(key).toString())
    const block = await signEntry({ seq: 0, prev: null, action: FEED_POST_ACTION, timestamp: 1, params: { content: CONTENT } }, signer)
    assert.equal(block.entry.author, signer.peerId)
    assert.deepEqual(await verifyEntry(block.entry), { ok: true })
    const other = signerFor(await generateKey())
    assert.deepEqual(await verifyEntry({ ...block.entry, sig: await other.sign(new Uint8Array(8)) }), { ok: false, code: 'bad-signature' })
  })
})
