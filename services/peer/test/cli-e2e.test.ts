/**
 * pharos-peer against a real worker (its own process, embedded mode): keygen, publish with
 * files until the worker holds the entry pinned, publish again from a fresh process (the log
 * continues: the worker says where it stands), then fetch as a second registered key and
 * compare the summary and every written file byte for byte. The author is offline by then,
 * so everything fetched came from the worker.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import * as dagJson from '@ipld/dag-json'
import { CID } from 'multiformats/cid'
import { FEED_POST_ACTION, verifyEntry } from '@pharos/protocol/log/index.ts'
import type { Entry } from '@pharos/protocol/log/index.ts'
import { runCli } from '../src/cli.ts'
import { registerAccount, runScript, startWorker, tempDir } from './helpers/worker.ts'
import type { WorkerProcess } from './helpers/worker.ts'

const BIN = fileURLToPath(new URL('../bin/pharos-peer.js', import.meta.url))
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

describe('pharos-peer against a worker', () => {
  let worker: WorkerProcess
  let work: string

  before(async () => {
    worker = await startWorker()
    work = await tempDir()
  })
  after(async () => { await worker.stop() })

  const cli = async (...args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> => await runScript(BIN, args)

  it('publishes (files included) until pinned, continues the log from a fresh process, and fetches it back verified as another key', async () => {
    const authorKey = join(work, 'author.json')
    const readerKey = join(work, 'reader.json')
    const author = await cli('keygen', '--out', authorKey)
    assert.equal(author.code, 0, author.stderr)
    const reader = await cli('keygen', '--out', readerKey)
    assert.equal(reader.code, 0, reader.stderr)
    const authorId = author.stdout.trim()
    await registerAccount(worker, authorId, 'author')
    await registerAccount(worker, reader.stdout.trim(), 'reader')

    const photo = new Uint8Array(3 * 1024 * 1024 + 123).map((_, i) => (i * 29 + 7) % 256)
    const notes = new TextEncoder().encode('notes: ünïcödé and all\n')
    await writeFile(join(work, 'photo.bin'), photo)
    await writeFile(join(work, 'notes.txt'), notes)

    const first = await cli('publish', '--key', authorKey, '--bootstrap', worker.tcpAddr, '--text', 'first post', '--file', join(work, 'photo.bin'), '--file', join(work, 'notes.txt'), '--timeout', '90')
    assert.equal(first.code, 0, `publish failed: ${first.stderr}`)
    const firstCid = CID.parse(first.stdout.trim())
    const second = await cli('publish', '--key', authorKey, '--bootstrap', worker.tcpAddr, '--text', 'second post', '--timeout', '90')
    assert.equal(second.code, 0, `second publish failed: ${second.stderr}`)
    const secondCid = CID.parse(second.stdout.trim())

    const out = join(work, 'out')
    const fetched = await cli('fetch', '--key', readerKey, '--bootstrap', worker.tcpAddr, '--author', authorId, '--out', out, '--timeout', '90')
    assert.equal(fetched.code, 0, `fetch failed: ${fetched.stderr}`)
    assert.deepEqual(JSON.parse(fetched.stdout), {
      author: authorId,
      head: secondCid.toString(),
      entries: 2,
      attachments: 2,
      bytes: photo.length + notes.length,
      verified: true
    })

    assert.deepEqual((await readdir(join(out, 'entries'))).sort(), [`0-${firstCid.toString()}.json`, `1-${secondCid.toString()}.json`])
    const entries = await Promise.all([`0-${firstCid.toString()}.json`, `1-${secondCid.toString()}.json`].map(async (name) => dagJson.decode<Entry>(await readFile(join(out, 'entries', name)))))
    const [genesis, next] = entries
    assert.ok(genesis !== undefined && next !== undefined)
    assert.equal(genesis.author, authorId)
    assert.equal(genesis.action, FEED_POST_ACTION)
    assert.equal(genesis.prev, null)
    assert.ok(next.prev !== null && CID.asCID(next.prev)?.equals(firstCid), 'the second run continued the first')
    assert.equal(next.seq, 1)
    for (const entry of entries) assert.deepEqual(await verifyEntry(entry), { ok: true })

    assert.deepEqual(new Uint8Array(await readFile(join(out, 'attachments', '0', 'photo.bin'))), photo)
    assert.deepEqual(new Uint8Array(await readFile(join(out, 'attachments', '0', 'notes.txt'))), notes)
    assert.deepEqual(await readdir(join(out, 'attachments')), ['0'])
    const post = JSON.parse(await readFile(join(out, 'posts', `0-${firstCid.toString()}.json`), 'utf8'))
    assert.equal(post.text, 'first post')
  })

  it('publish draws its progress on a terminal\'s stderr: blocks and bytes written, the entry sent, then pinned', async () => {
    const key = join(work, 'progress.json')
    const made = await cli('keygen', '--out', key)
    assert.equal(made.code, 0, made.stderr)
    await registerAccount(worker, made.stdout.trim(), 'progress')
    const file = join(work, 'two-mib.bin')
    await writeFile(file, new Uint8Array(2 * 1024 * 1024 + 5).map((_, i) => (i * 7) % 251))
    let stdout = ''
    let stderr = ''
    const code = await runCli(['publish', '--key', key, '--bootstrap', worker.tcpAddr, '--text', 'with progress', '--file', file, '--timeout', '90'], {
      stdout: (text) => { stdout += text },
      stderr: (text) => { stderr += text },
      stderrIsTerminal: true
    })
    assert.equal(code, 0, stderr)
    CID.parse(stdout.trim())
    const frames = stderr.split('\r\u001b[2K').filter((frame) => frame !== '')
    assert.ok(frames.some((frame) => frame.startsWith('publish: entry 0 signed and sent (4 blocks, 2.0 MiB, 1/1 attachments)')), JSON.stringify(frames))
    assert.equal(frames.at(-1), 'publish: entry 0 sent and pinned\n')
  })

  it('says clearly that an unregistered key was refused, and exits 1', async () => {
    const key = join(work, 'stranger.json')
    assert.equal((await cli('keygen', '--out', key)).code, 0)
    const refused = await cli('publish', '--key', key, '--bootstrap', worker.tcpAddr, '--text', 'let me in', '--timeout', '30')
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^pharos-peer publish: OverlayRefusedError: overlay refused by 12D3KooW\w+: not-registered\n$/)
  })

  it('runs the publish-and-fetch example against the worker, as the README says: npm run example:publish-and-fetch', async () => {
    // The PATH a shell has: `node` is whatever the machine has; npm puts node@22 first for the script.
    const shellPath = (process.env.PATH ?? '').split(':').filter((dir) => !dir.endsWith('node_modules/.bin')).join(':')
    const child = spawn('npm', ['run', '--silent', 'example:publish-and-fetch', '--', worker.tcpAddr, worker.httpUrl, worker.adminToken], {
      cwd: ROOT,
      env: { PATH: shellPath, HOME: process.env.HOME ?? '' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    const result = { code: await new Promise<number | null>((resolve) => child.once('exit', resolve)), stdout, stderr }
    assert.equal(result.code, 0, result.stderr)
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line))
    assert.equal(lines[0].pinned, true)
    assert.deepEqual(lines.slice(1).map((line: { seq: number, text: string }) => [line.seq, line.text]), [[0, 'Hello from the peer SDK'], [1, 'A post with a file']])
    assert.deepEqual(lines[2].attachments, [{ name: 'hello.txt', text: 'attached bytes\n' }])
  })
})
