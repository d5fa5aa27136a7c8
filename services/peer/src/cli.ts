/**
 * `pharos-peer`: the peer SDK from a shell.
 *
 *   pharos-peer keygen  --out key.json [--force]
 *   pharos-peer publish --key key.json --bootstrap <multiaddr> --text "…" [--file path]…
 *                       [--private --allow <peer id,…> [--no-beacons]]
 *   pharos-peer fetch   --key key.json --bootstrap <multiaddr> --author <peer id> --out dir
 *
 * Exit codes: 0 done, 1 failed (one line on stderr says why; for `fetch`, one line per
 * private post whose key was denied), 2 bad usage (with the usage).
 * On a terminal, `fetch` and `publish` keep a progress line on stderr (entries, blocks, bytes).
 * `runCli` takes its output streams as arguments, so tests run it in-process.
 */
import { readFile } from 'node:fs/promises'
import { basename, join, resolve, sep } from 'node:path'
import { parseArgs } from 'node:util'
import * as dagJson from '@ipld/dag-json'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { FEED_POST_ACTION, publicKeyFromPeerId } from '@pharos/protocol/log/index.ts'
import { DEFAULT_NETWORK } from './constants.ts'
import { InvalidBootstrapAddressError, KeyDeniedError } from './errors.ts'
import { generateKey, loadKeyFile, saveKeyFile } from './keys.ts'
import { formatBytes, ProgressLine } from './cli-progress.ts'
import { createPharosPeer } from './pharos-peer.ts'
import type { PharosPeer } from './pharos-peer.ts'
import { mkdirNoFollow, writeFileNoFollow } from './safe-write.ts'
import { packageVersion } from './version.ts'

export const USAGE = `usage: pharos-peer <command> [options]

commands:
  keygen   --out <file> [--force]
           Generate an ed25519 key file (mode 0600, also when --force replaces a file)
           and print its peer ID. An existing file is kept unless --force; a symbolic
           link is never written through.
  publish  --key <file> --bootstrap <multiaddr> --text <text> [--file <path>]...
           [--private [--allow <peer id>,...]... [--no-beacons]]
           Publish a post (each --file an attachment) and print the entry's CID once a
           beacon holds it fully pinned. With --private, the text and every file are
           encrypted (AES-256-GCM) under a fresh key that only the author and the --allow
           peers may get: the key is deposited with a beacon (unless --no-beacons, when
           only the author and the allowed peers it reaches online hold it) and pushed to
           the allowed peers that are online.
  fetch    --key <file> --bootstrap <multiaddr> --author <peer id> --out <dir>
           Fetch and verify an author's whole log; write <dir>/entries/<seq>-<cid>.json
           (dag-json), <dir>/posts/<seq>-<cid>.json and <dir>/attachments/<seq>/<name>, and
           print a JSON summary. Private posts this key may read are decrypted; for each
           it may not, a line on stderr gives the reason (post <seq> <cid>: key denied
           (<code>): <reason>), nothing of it is written, and the exit code is 1.
           Never writes through a symbolic link in <dir>.

options:
  --bootstrap <multiaddr>  a beacon, ending in /p2p/<peer id> (repeatable)
  --network <id>           network id (default ${DEFAULT_NETWORK})
  --timeout <seconds>      give up after this long (default 120)
  --help                   print this text
  --version                print the version (pharos-peer <version>)

On a terminal, fetch and publish show their progress on stderr (entries, blocks, bytes).

exit codes: 0 done, 1 failed, 2 bad usage
`

const DEFAULT_TIMEOUT_S = 120

/** Where the CLI writes; `process.stdout`/`stderr` in the binary, buffers in tests. */
export interface CliIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Whether stderr is a terminal: then fetch and publish draw a progress line on it. @default false */
  stderrIsTerminal?: boolean
}

const processIo: CliIo = {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) },
  stderrIsTerminal: process.stderr.isTTY === true
}

/** Bad arguments: exit 2 with the usage. */
class UsageError extends Error {
  override readonly name = 'UsageError'
}

const OPTIONS = {
  out: { type: 'string' },
  force: { type: 'boolean' },
  key: { type: 'string' },
  bootstrap: { type: 'string', multiple: true },
  text: { type: 'string' },
  file: { type: 'string', multiple: true },
  private: { type: 'boolean' },
  allow: { type: 'string', multiple: true },
  'no-beacons': { type: 'boolean' },
  author: { type: 'string' },
  network: { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean' },
  version: { type: 'boolean' }
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS, allowPositionals: true }>>['values']

const COMMAND_OPTIONS: Record<string, { required: ReadonlyArray<keyof Values>, allowed: ReadonlyArray<keyof Values> }> = {
  keygen: { required: ['out'], allowed: ['out', 'force'] },
  publish: { required: ['key', 'bootstrap', 'text'], allowed: ['key', 'bootstrap', 'text', 'file', 'private', 'allow', 'no-beacons', 'network', 'timeout'] },
  fetch: { required: ['key', 'bootstrap', 'author', 'out'], allowed: ['key', 'bootstrap', 'author', 'out', 'network', 'timeout'] }
}

function parse (argv: readonly string[]): { command: string, values: Values } {
  let parsed
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const { values, positionals } = parsed
  if (values.help === true) return { command: 'help', values }
  if (values.version === true) return { command: 'version', values }
  const [command, ...extra] = positionals
  if (command === undefined) throw new UsageError('no command given')
  const spec = COMMAND_OPTIONS[command]
  if (spec === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`)
  for (const name of Object.keys(values) as Array<keyof Values>) {
    if (!spec.allowed.includes(name)) throw new UsageError(`${command} does not take --${name}`)
  }
  for (const name of spec.required) {
    if (values[name] === undefined) throw new UsageError(`${command} needs --${name}`)
  }
  return { command, values }
}

function timeoutSeconds (values: Values): number {
  if (values.timeout === undefined) return DEFAULT_TIMEOUT_S
  const seconds = Number(values.timeout)
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) throw new UsageError(`--timeout must be a number of seconds in (0, 86400], not ${JSON.stringify(values.timeout)}`)
  return seconds
}

/**
 * A file name for an attachment name from the wire: no directory separators, no control
 * characters, not `.` or `..`, at most 255 bytes; `taken` makes names in one folder unique.
 */
export function safeFileName (name: string, taken: Set<string>): string {
  let safe = name.replace(/[/\\\p{Cc}]/gu, '_')
  if (safe === '' || safe === '.' || safe === '..') safe = '_'
  while (Buffer.byteLength(safe) > 240) safe = safe.slice(0, -1)
  let unique = safe
  for (let n = 2; taken.has(unique.toLowerCase()); n++) unique = `${safe}~${n}`
  taken.add(unique.toLowerCase())
  return unique
}

/** `child` inside `dir`, or a thrown error: the last guard against path traversal. */
function inside (dir: string, child: string): string {
  const root = resolve(dir)
  const path = resolve(root, child)
  if (!path.startsWith(root + sep)) throw new Error(`refusing to write outside ${root}: ${child}`)
  return path
}

async function withPeer<T> (values: Values, signal: AbortSignal, work: (peer: PharosPeer) => Promise<T>): Promise<T> {
  const privateKey = await loadKeyFile(values.key ?? '')
  let peer: PharosPeer
  try {
    peer = await createPharosPeer({ privateKey, bootstrap: values.bootstrap ?? [], network: values.network ?? DEFAULT_NETWORK })
  } catch (err) {
    if (err instanceof InvalidBootstrapAddressError) throw new UsageError(err.message)
    throw err
  }
  try {
    await peer.start({ signal })
    return await work(peer)
  } finally {
    await peer.stop()
  }
}

async function keygen (values: Values, io: CliIo): Promise<void> {
  const key = await generateKey()
  await saveKeyFile(values.out ?? '', key, { overwrite: values.force === true })
  io.stdout(`${peerIdFromPrivateKey(key).toString()}\n`)
}

/** `--private`, `--allow` and `--no-beacons` as publishPost's `private`, or undefined for a public post. */
function privateOption (values: Values): { allow: string[], beacons: boolean } | undefined {
  if (values.private !== true) {
    if (values.allow !== undefined) throw new UsageError('--allow needs --private')
    if (values['no-beacons'] === true) throw new UsageError('--no-beacons needs --private')
    return undefined
  }
  const allow = (values.allow ?? []).flatMap((list) => list.split(',')).map((peer) => peer.trim()).filter((peer) => peer !== '')
  for (const peer of allow) {
    if (publicKeyFromPeerId(peer) === undefined) throw new UsageError(`--allow takes ed25519 peer IDs (12D3KooW…), not ${JSON.stringify(peer)}`)
  }
  return { allow, beacons: values['no-beacons'] !== true }
}

async function publish (values: Values, io: CliIo, signal: AbortSignal, timeoutMs: number): Promise<void> {
  const privately = privateOption(values)
  const attachments = await Promise.all((values.file ?? []).map(async (path) => ({ name: basename(path), bytes: new Uint8Array(await readFile(path)) })))
  const line = new ProgressLine(io.stderr, io.stderrIsTerminal === true)
  try {
    const cid = await withPeer(values, signal, async (peer) => {
      line.update('publish: connected')
      const published = await peer.publishPost({ text: values.text ?? '', attachments, ...(privately === undefined ? {} : { private: privately }) }, {
        signal,
        onProgress: (event) => {
          const { blocks, bytes, attachments: done, totalAttachments } = event.detail
          const counts = `${blocks} blocks, ${formatBytes(bytes)}, ${done}/${totalAttachments} attachments`
          if (event.type === 'pharos:publish-post:entry') line.update(`publish: entry ${event.detail.seq} signed and sent (${counts})`, true)
          else line.update(`publish: ${counts}`)
        }
      })
      const sent = `entry ${published.seq} sent`
      await peer.waitUntilHeld([published.cid], {
        signal,
        state: 'pinned',
        timeoutMs,
        onProgress: ({ detail }) => { line.update(`publish: ${sent}; a beacon holds it ${detail.statuses[0]?.status ?? 'unknown'}, waiting for pinned`) }
      })
      line.update(`publish: ${sent} and pinned`, true)
      if (published.private !== undefined) {
        const { deposited, pushedTo } = published.private
        line.update(`publish: private; key ${deposited ? 'deposited with a beacon' : 'kept from beacons'}, pushed to ${pushedTo.length} allowed peer(s) online`, true)
        if (!deposited && pushedTo.length === 0) {
          io.stderr('pharos-peer publish: warning: no beacon holds the key (--no-beacons) and no allowed peer was online to take it; this process kept the only copy, so nobody can read this post\n')
        }
      }
      return published.cid
    })
    io.stdout(`${cid.toString()}\n`)
  } finally {
    line.done()
  }
}

/** Fetches an author's log and posts; resolves with how many private posts' keys were denied. */
async function fetchLogCommand (values: Values, io: CliIo, signal: AbortSignal): Promise<number> {
  const author = values.author ?? ''
  if (publicKeyFromPeerId(author) === undefined) throw new UsageError(`--author must be an ed25519 peer ID (12D3KooW…), not ${JSON.stringify(author)}`)
  const out = resolve(values.out ?? '')
  /** Writes under `out`, through no symbolic link (a folder or file linked elsewhere is refused). */
  const write = async (folder: string, file: string, data: Uint8Array | string): Promise<void> => {
    await mkdirNoFollow(out, folder)
    await writeFileNoFollow(inside(out, join(folder, file)), data)
  }
  const line = new ProgressLine(io.stderr, io.stderrIsTerminal === true)
  const summary = await withPeer(values, signal, async (peer) => {
    line.update('fetch: connected; asking for the head')
    const log = await peer.fetchLog(author, {
      signal,
      onProgress: ({ detail }) => { line.update(`fetch: ${detail.entries}/${detail.total} entries, ${formatBytes(detail.bytes)}`) }
    })
    await mkdirNoFollow(out, 'entries')
    let attachments = 0
    let bytes = 0
    let blocks = 0
    let blockBytes = 0
    let posts = 0
    let denied = 0
    const postCount = log.filter((block) => block.entry.action === FEED_POST_ACTION).length
    for (const block of log) {
      const { entry, cid } = block
      const stem = `${entry.seq}-${cid.toString()}`
      await write('entries', `${stem}.json`, dagJson.encode(entry))
      if (entry.action !== FEED_POST_ACTION) continue
      posts++
      const blocksBefore = blocks
      const bytesBefore = blockBytes
      let post
      try {
        post = await peer.fetchPost(block, {
          signal,
          onProgress: ({ detail }) => {
            blocks = blocksBefore + detail.blocks
            blockBytes = bytesBefore + detail.bytes
            line.update(`fetch: ${log.length}/${log.length} entries; post ${posts}/${postCount}: ${blocks} blocks, ${formatBytes(blockBytes)}`)
          }
        })
      } catch (err) {
        if (!(err instanceof KeyDeniedError)) throw err
        // A private post this key may not read: say why, write nothing of it, go on.
        denied++
        line.update(`fetch: post ${entry.seq} ${cid.toString()}: key denied (${err.code}): ${err.reason}`, true)
        io.stderr(`pharos-peer fetch: post ${entry.seq} ${cid.toString()}: key denied (${err.code}): ${err.reason}\n`)
        continue
      }
      const folder = join('attachments', String(entry.seq))
      const taken = new Set<string>()
      const files = []
      for (const attachment of post.attachments) {
        const file = safeFileName(attachment.name, taken)
        await write(folder, file, attachment.bytes)
        files.push({ name: attachment.name, file: join(folder, file), size: attachment.bytes.length, cid: attachment.cid.toString() })
        attachments++
        bytes += attachment.bytes.length
      }
      await write('posts', `${stem}.json`, JSON.stringify({ text: post.text, attachments: files, ...(post.private === undefined ? {} : { private: true }) }, null, 2) + '\n')
    }
    line.update(`fetch: ${log.length} entries, ${postCount} posts, ${blocks} blocks, ${formatBytes(blockBytes)}: done`, true)
    return { author, head: log[0]?.cid.toString() ?? null, entries: log.length, attachments, bytes, verified: true, ...(denied === 0 ? {} : { denied }) }
  }).finally(() => { line.done() })
  io.stdout(`${JSON.stringify(summary)}\n`)
  return summary.denied ?? 0
}

/** Runs one CLI invocation; resolves with the exit code. */
export async function runCli (argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let command: string
  let values: Values
  try {
    ({ command, values } = parse(argv))
  } catch (err) {
    io.stderr(`pharos-peer: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (command === 'help') {
    io.stdout(USAGE)
    return 0
  }
  if (command === 'version') {
    io.stdout(`pharos-peer ${packageVersion()}\n`)
    return 0
  }
  let timeoutMs = DEFAULT_TIMEOUT_S * 1000
  let signal: AbortSignal | undefined
  try {
    timeoutMs = timeoutSeconds(values) * 1000
    signal = AbortSignal.timeout(timeoutMs)
    switch (command) {
      case 'keygen': await keygen(values, io); break
      case 'publish': await publish(values, io, signal, timeoutMs); break
      case 'fetch': if (await fetchLogCommand(values, io, signal) > 0) return 1; break
    }
    return 0
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`pharos-peer: ${err.message}\n\n${USAGE}`)
      return 2
    }
    const error = err instanceof Error ? err : new Error(String(err))
    // Whatever a cancelled operation threw (AbortError, a wrapped Bitswap failure…), the cause is --timeout.
    const timedOut = signal?.aborted === true && error.name !== 'RequestTimeoutError'
    io.stderr(`pharos-peer ${command}: ${timedOut ? `timed out after ${timeoutMs / 1000} s (--timeout)` : `${error.name}: ${error.message}`}\n`)
    return 1
  }
}
