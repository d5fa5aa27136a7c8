/**
 * The pharos-peer CLI: usage errors exit 2 with the usage, failures exit 1 with one clear
 * line, keygen never overwrites by accident, and `fetch` writes a verified log (entries,
 * posts and attachments, names sanitised) against a peer that serves it.
 */
import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawn } from 'node:child_process'
import { after, describe, it } from 'node:test'
import * as dagJson from '@ipld/dag-json'
import { runCli, safeFileName } from '../src/cli.ts'
import { loadKeyFile, saveKeyFile, generateKey } from '../src/keys.ts'
import type { PharosPeer } from '../src/pharos-peer.ts'
import { addressOf, startPeer, utf8 } from './helpers/peers.ts'

const BIN = fileURLToPath(new URL('../bin/pharos-peer.js', import.meta.url))
const dir = async (): Promise<string> => await mkdtemp(join(tmpdir(), 'pharos-peer-cli-'))

async function cli (...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await runCli(argv, { stdout: (text) => { stdout += text }, stderr: (text) => { stderr += text } })
  return { code, stdout, stderr }
}

async function bin (...argv: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { code, stdout, stderr }
}

describe('pharos-peer usage', () => {
  it('exits 2 with the usage for bad arguments', async () => {
    const folder = await dir()
    const cases: Array<[string[], RegExp]> = [
      [[], /no command given/],
      [['frobnicate'], /unknown command "frobnicate"/],
      [['keygen'], /keygen needs --out/],
      [['publish', '--key', 'k.json', '--text', 'x'], /publish needs --bootstrap/],
      [['fetch', '--key', 'k.json', '--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN', '--out', folder], /fetch needs --author/],
      [['keygen', '--out', 'k.json', '--text', 'x'], /keygen does not take --text/],
      [['keygen', '--bogus'], /Unknown option '--bogus'/],
      [['keygen', '--out', 'k.json', 'extra'], /unexpected argument "extra"/],
      [['publish', '--key', 'k.json', '--bootstrap', 'b', '--text', 'x', '--timeout', 'soon'], /--timeout must be a number of seconds/]
    ]
    for (const [argv, pattern] of cases) {
      const { code, stdout, stderr } = await cli(...argv)
      assert.equal(code, 2, argv.join(' '))
      assert.match(stderr, pattern, argv.join(' '))
      assert.match(stderr, /usage: pharos-peer <command>/)
      assert.equal(stdout, '')
    }
  })

  it('prints its version for --version and exits 0 (through the binary)', async () => {
    const { version } = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
    const { code, stdout, stderr } = await bin('--version')
    assert.equal(code, 0, stderr)
    assert.equal(stdout, `pharos-peer ${version}\n`)
  })

  it('prints the usage for --help and exits 0', async () => {
    const { code, stdout } = await cli('--help')
    assert.equal(code, 0)
    assert.match(stdout, /pharos-peer keygen|keygen {3}--out/)
  })

  it('turns a bootstrap address without /p2p/ or an author that is not a peer ID into usage errors', async () => {
    const key = join(await dir(), 'k.json')
    await saveKeyFile(key, await generateKey())
    const publish = await cli('publish', '--key', key, '--bootstrap', '/ip4/127.0.0.1/tcp/4001', '--text', 'x')
    assert.equal(publish.code, 2)
    assert.match(publish.stderr, /must end in \/p2p\/<peer id>/)
    const fetch = await cli('fetch', '--key', key, '--bootstrap', '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN', '--author', 'alice', '--out', await dir())
    assert.equal(fetch.code, 2)
    assert.match(fetch.stderr, /--author must be an ed25519 peer ID/)
  })

  it('exits 1 with one line naming the problem when the work fails', async () => {
    const folder = await dir()
    const missing = await cli('publish', '--key', join(folder, 'absent.json'), '--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN', '--text', 'x')
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /^pharos-peer publish: KeyFileError: key file .*absent\.json: does not exist\n$/)
    const key = join(folder, 'k.json')
    await saveKeyFile(key, await generateKey())
    // Nothing listens on port 1.
    const unreachable = await cli('publish', '--key', key, '--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN', '--text', 'x', '--timeout', '10')
    assert.equal(unreachable.code, 1)
    assert.match(unreachable.stderr, /^pharos-peer publish: NoBeaconError: no beacon reachable: could not dial any bootstrap beacon/)
  })
})

describe('pharos-peer keygen', () => {
  it('writes a 0600 key file, prints its peer ID, and refuses to overwrite it without --force (through the binary)', async () => {
    const file = join(await dir(), 'key.json')
    const first = await bin('keygen', '--out', file)
    assert.equal(first.code, 0, first.stderr)
    const peerId = first.stdout.trim()
    assert.match(peerId, /^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/)
    assert.equal(JSON.parse(await readFile(file, 'utf8')).peerId, peerId)
    assert.equal((await stat(file)).mode & 0o777, 0o600)

    const again = await bin('keygen', '--out', file)
    assert.equal(again.code, 1)
    assert.match(again.stderr, /already exists/)
    assert.equal(JSON.parse(await readFile(file, 'utf8')).peerId, peerId, 'the key is kept')

    const forced = await bin('keygen', '--out', file, '--force')
    assert.equal(forced.code, 0)
    assert.notEqual(forced.stdout.trim(), peerId)
    assert.equal((await loadKeyFile(file)).type, 'Ed25519')

    const usage = await bin()
    assert.equal(usage.code, 2)
  })
})

describe('pharos-peer never writes through a symbolic link', () => {
  it('keygen refuses a linked --out, with and without --force, and leaves the link\'s target alone', async () => {
    const folder = await dir()
    const victim = join(folder, 'authorized_keys')
    await writeFile(victim, 'ssh-ed25519 AAAA… mine\n')
    const link = join(folder, 'key.json')
    await symlink(victim, link)
    for (const args of [[], ['--force']]) {
      const result = await bin('keygen', '--out', link, ...args)
      assert.equal(result.code, 1, result.stderr)
      assert.match(result.stderr, /KeyFileError: key file .*key\.json: is a symbolic link; refusing to write a key through it/)
      assert.equal(await readFile(victim, 'utf8'), 'ssh-ed25519 AAAA… mine\n', `the target is untouched (${args.join(' ') || 'no flags'})`)
    }
    // A dangling link too: following it would create the file it names.
    const dangling = join(folder, 'dangling.json')
    await symlink(join(folder, 'created-through-the-link'), dangling)
    assert.equal((await bin('keygen', '--out', dangling, '--force')).code, 1)
    await assert.rejects(stat(join(folder, 'created-through-the-link')), { code: 'ENOENT' })
  })

  it('keygen --force writes the key 0600 even over a file that was readable by everyone', async () => {
    const file = join(await dir(), 'key.json')
    await writeFile(file, '{}')
    await chmod(file, 0o644)
    const forced = await bin('keygen', '--out', file, '--force')
    assert.equal(forced.code, 0, forced.stderr)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    assert.equal((await loadKeyFile(file)).type, 'Ed25519')
  })

  it('fetch refuses a linked folder or file in --out and writes nothing through it', async () => {
    const author = await startPeer()
    try {
      const entry = await author.publishPost({ text: 'hello' })
      const reader = join(await dir(), 'reader.json')
      await saveKeyFile(reader, await generateKey())
      const fetchInto = async (out: string): Promise<{ code: number, stderr: string }> =>
        await cli('fetch', '--key', reader, '--bootstrap', addressOf(author), '--author', author.peerId.toString(), '--out', out, '--timeout', '60')

      // A folder inside --out linked elsewhere.
      const elsewhere = await dir()
      const linkedFolder = join(await dir(), 'out')
      await mkdir(linkedFolder)
      await symlink(elsewhere, join(linkedFolder, 'entries'))
      const folderResult = await fetchInto(linkedFolder)
      assert.equal(folderResult.code, 1)
      assert.match(folderResult.stderr, /SymlinkTargetError: .*entries is a symbolic link/)
      assert.deepEqual(await readdir(elsewhere), [], 'nothing written through the folder link')

      // An output file linked to a file of the user's.
      const victim = join(await dir(), 'precious.txt')
      await writeFile(victim, 'precious')
      const linkedFile = join(await dir(), 'out')
      await mkdir(join(linkedFile, 'entries'), { recursive: true })
      await symlink(victim, join(linkedFile, 'entries', `0-${entry.cid.toString()}.json`))
      const fileResult = await fetchInto(linkedFile)
      assert.equal(fileResult.code, 1)
      assert.match(fileResult.stderr, /SymlinkTargetError: .*\.json is a symbolic link/)
      assert.equal(await readFile(victim, 'utf8'), 'precious')

      // Without links, the same fetch writes.
      const clean = await fetchInto(join(await dir(), 'out'))
      assert.equal(clean.code, 0, clean.stderr)
    } finally {
      await author.stop()
    }
  })
})

describe('attachment file names', () => {
  it('never leave their folder, and stay unique within it', () => {
    const taken = new Set<string>()
    assert.equal(safeFileName('../../etc/passwd', taken), '.._.._etc_passwd')
    assert.equal(safeFileName('..', taken), '_')
    assert.equal(safeFileName('.', taken), '_~2')
    assert.equal(safeFileName('a\\b\u0000c\nd', taken), 'a_b_c_d')
    assert.equal(safeFileName('photo.jpg', taken), 'photo.jpg')
    assert.equal(safeFileName('PHOTO.jpg', taken), 'PHOTO.jpg~2')
    assert.ok(Buffer.byteLength(safeFileName('é'.repeat(300), taken)) <= 240)
  })
})

describe('pharos-peer fetch', () => {
  let author: PharosPeer | undefined
  after(async () => { await author?.stop() })

  it('writes every entry as dag-json and every attachment byte for byte, and prints a summary', async () => {
    author = await startPeer()
    const photo = new Uint8Array(1.5 * 1024 * 1024).map((_, i) => (i * 13) % 256)
    const first = await author.publishPost({ text: 'first', attachments: [{ name: '../escape.txt', bytes: utf8('nice try') }, { name: 'photo.bin', bytes: photo }] })
    const second = await author.publishPost({ text: 'second', attachments: [{ name: 'a.txt', bytes: utf8('one') }, { name: 'a.txt', bytes: utf8('two') }] })
    const reader = join(await dir(), 'reader.json')
    await saveKeyFile(reader, await generateKey())
    const out = join(await dir(), 'out')

    const { code, stdout, stderr } = await cli('fetch', '--key', reader, '--bootstrap', addressOf(author), '--author', author.peerId.toString(), '--out', out, '--timeout', '60')
    assert.equal(code, 0, stderr)
    const bytes = 'nice try'.length + photo.length + 3 + 3
    assert.deepEqual(JSON.parse(stdout), { author: author.peerId.toString(), head: second.cid.toString(), entries: 2, attachments: 4, bytes, verified: true })

    assert.deepEqual((await readdir(join(out, 'entries'))).sort(), [`0-${first.cid.toString()}.json`, `1-${second.cid.toString()}.json`])
    const written = await readFile(join(out, 'entries', `1-${second.cid.toString()}.json`))
    assert.deepEqual(new Uint8Array(written), dagJson.encode(second.block.entry))
    assert.deepEqual(new Uint8Array(await readFile(join(out, 'attachments', '0', '.._escape.txt'))), utf8('nice try'))
    assert.deepEqual(new Uint8Array(await readFile(join(out, 'attachments', '0', 'photo.bin'))), photo)
    assert.deepEqual((await readdir(join(out, 'attachments', '1'))).sort(), ['a.txt', 'a.txt~2'])
    assert.deepEqual(new Uint8Array(await readFile(join(out, 'attachments', '1', 'a.txt~2'))), utf8('two'))
    const post = JSON.parse(await readFile(join(out, 'posts', `0-${first.cid.toString()}.json`), 'utf8'))
    assert.equal(post.text, 'first')
    assert.deepEqual(post.attachments[0], { name: '../escape.txt', file: join('attachments', '0', '.._escape.txt'), size: 8, cid: post.attachments[0].cid })
  })
})
