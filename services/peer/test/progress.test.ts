/**
 * The SDK's long calls report progress Helia-style (issue 20, item 8): `onProgress` is
 * called with events that have a `type` and a `detail`, their counts growing as the work
 * goes, during a real fetch between two peers on loopback (the author serves its log and its
 * posts as a beacon would); and the CLI draws them on a terminal's stderr only.
 */
import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { ProgressEvent } from 'progress-events'
import { runCli } from '../src/cli.ts'
import { generateKey, saveKeyFile } from '../src/keys.ts'
import type { PharosPeer } from '../src/pharos-peer.ts'
import type { FetchLogProgressEvents, FetchPostProgressEvents, PublishPostProgressEvents } from '../src/progress.ts'
import { addressOf, startPeer, utf8 } from './helpers/peers.ts'

const MIB = 1024 * 1024

/** Each count never goes down from one event to the next, and goes up at least once. */
function assertGrowing (events: ReadonlyArray<Record<string, unknown>>, key: string): void {
  const values = events.map((detail) => detail[key] as number)
  for (let i = 1; i < values.length; i++) assert.ok((values[i] ?? 0) >= (values[i - 1] ?? 0), `${key} went down: ${values.join(', ')}`)
  assert.ok((values.at(-1) ?? 0) > (values[0] ?? 0), `${key} grew: ${values.join(', ')}`)
}

describe('progress of the SDK\'s fetches and publishes', () => {
  let author: PharosPeer
  let reader: PharosPeer
  const photo = new Uint8Array(2.5 * MIB).map((_, i) => (i * 17) % 253)
  const publishEvents: Array<ProgressEvent<PublishPostProgressEvents['type']>> = []

  before(async () => {
    author = await startPeer()
    await author.publishPost({ text: 'one' })
    await author.publishPost({ text: 'two', attachments: [{ name: 'photo.bin', bytes: photo }, { name: 'note.txt', bytes: utf8('a note') }] }, { onProgress: (event) => { publishEvents.push(event) } })
    await author.publishPost({ text: 'three' })
    reader = await startPeer({ bootstrap: [addressOf(author)] })
  })
  after(async () => {
    await reader?.stop()
    await author?.stop()
  })

  it('publishPost reports every block written, each attachment, then the entry', () => {
    const types = publishEvents.map((event) => event.type)
    assert.equal(types.at(-1), 'pharos:publish-post:entry')
    assert.deepEqual(publishEvents.filter((event) => event.type === 'pharos:publish-post:attachment').map((event) => (event.detail as { name: string }).name), ['photo.bin', 'note.txt'])
    const details = publishEvents.map((event) => event.detail as PublishPostProgressEvents['detail'])
    assertGrowing(details as unknown as Array<Record<string, unknown>>, 'blocks')
    assertGrowing(details as unknown as Array<Record<string, unknown>>, 'bytes')
    const last = details.at(-1)
    // 2.5 MiB in 1 MiB raw leaves: 3 leaves; a one-chunk note is 1 more; then the body.
    assert.deepEqual({ blocks: last?.blocks, bytes: last?.bytes, attachments: last?.attachments }, { blocks: 5, bytes: photo.length + 6, attachments: 2 })
  })

  it('fetchLog reports the head, then each entry verified with growing counts and bytes', async () => {
    const events: Array<ProgressEvent<FetchLogProgressEvents['type']>> = []
    const log = await reader.fetchLog(author.peerId.toString(), { onProgress: (event) => { events.push(event) } })
    assert.equal(log.length, 3)
    assert.equal(events[0]?.type, 'pharos:fetch-log:head')
    const entries = events.filter((event) => event.type === 'pharos:fetch-log:entry').map((event) => event.detail as FetchLogProgressEvents['detail'] & { seq: number })
    assert.deepEqual(entries.map((detail) => detail.entries), [1, 2, 3])
    assert.deepEqual(entries.map((detail) => detail.seq), [2, 1, 0], 'head first')
    assert.ok(entries.every((detail) => detail.total === 3 && detail.author === author.peerId.toString()))
    assertGrowing(entries as unknown as Array<Record<string, unknown>>, 'bytes')
    assert.equal(entries.at(-1)?.bytes, log.reduce((sum, block) => sum + block.bytes.length, 0))
  })

  it('fetchPost reports each block fetched over Bitswap with growing counts, and each attachment', async () => {
    const log = await reader.fetchLog(author.peerId.toString())
    const withFiles = log.find((block) => block.entry.seq === 1) ?? assert.fail()
    const events: Array<ProgressEvent<FetchPostProgressEvents['type']>> = []
    const post = await reader.fetchPost(withFiles, { onProgress: (event) => { events.push(event) } })
    assert.equal(post.attachments.length, 2)
    const blocks = events.filter((event) => event.type === 'pharos:fetch-post:block').map((event) => event.detail as FetchPostProgressEvents['detail'])
    assert.deepEqual(blocks.map((detail) => detail.blocks), blocks.map((_, i) => i + 1), 'one event a block, counted from 1')
    // The body, the photo's root and its 3 leaves, the note's single leaf.
    assert.equal(blocks.length, 6)
    assertGrowing(blocks as unknown as Array<Record<string, unknown>>, 'bytes')
    assert.ok((blocks.at(-1)?.bytes ?? 0) > photo.length, 'every byte of every block counted')
    assert.deepEqual(events.filter((event) => event.type === 'pharos:fetch-post:attachment').map((event) => {
      const detail = event.detail as FetchPostProgressEvents['detail'] & { name: string }
      return [detail.name, detail.attachments, detail.totalAttachments]
    }), [['photo.bin', 1, 2], ['note.txt', 2, 2]])
  })

  it('pharos-peer fetch draws its progress on stderr when stderr is a terminal, and writes nothing there otherwise', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'pharos-peer-progress-'))
    const key = join(folder, 'reader.json')
    await saveKeyFile(key, await generateKey())
    const run = async (terminal: boolean, out: string): Promise<{ code: number, stdout: string, stderr: string }> => {
      let stdout = ''
      let stderr = ''
      const code = await runCli(['fetch', '--key', key, '--bootstrap', addressOf(author), '--author', author.peerId.toString(), '--out', join(folder, out), '--timeout', '60'], {
        stdout: (text) => { stdout += text },
        stderr: (text) => { stderr += text },
        stderrIsTerminal: terminal
      })
      return { code, stdout, stderr }
    }
    const onTerminal = await run(true, 'tty')
    assert.equal(onTerminal.code, 0, onTerminal.stderr)
    const frames = onTerminal.stderr.split('\r\u001b[2K').filter((frame) => frame !== '')
    assert.ok(frames.length >= 2, `a line redrawn as it goes: ${JSON.stringify(onTerminal.stderr)}`)
    assert.match(frames.at(-1) ?? '', /^fetch: 3 entries, 3 posts, 8 blocks, 2\.5 MiB: done\n$/, 'the last frame sums it up (three posts: three bodies, the photo\'s root and 3 leaves, the note) and ends the line')
    assert.ok(frames.some((frame) => /\d+\/3 entries/.test(frame)), 'entries were counted as they came')
    assert.equal(JSON.parse(onTerminal.stdout).entries, 3, 'the summary still goes to stdout')

    const piped = await run(false, 'pipe')
    assert.equal(piped.code, 0, piped.stderr)
    assert.equal(piped.stderr, '', 'nothing on a stderr that is not a terminal')
  })
})
