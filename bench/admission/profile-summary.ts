/**
 * Where a process's CPU went during the admission bench's accept streams:
 * `node bench/admission/profile-summary.ts <dir> [--top 30]`, after
 * `node bench/admission/run.ts --accepts-only --cpu-prof-dir <dir>`.
 *
 * Reads `<dir>/windows.json` (each stream's pid and window, monotonic µs: the clock V8's
 * profiler stamps samples with) and the `.cpuprofile` V8 wrote for that pid, keeps the
 * samples inside the window, and prints per window: busy time (all samples but "(idle)"),
 * self time by function (name, file:line) and by package, and total (inclusive) time of the
 * functions that hold the most, each in ms and % of busy time. A sample's time is the gap to
 * the next sample.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }
interface Window { label: string, pid: number, fromMicros: number, toMicros: number }

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, callers: { type: 'string' }, part: { type: 'string' } } })
const dir = positionals[0]
if (dir === undefined) {
  process.stderr.write('usage: node bench/admission/profile-summary.ts <dir> [--top 30] [--callers <function name>] [--part <part name prefix>]\n')
  process.exit(2)
}
const TOP = Number(values.top)
/** With --callers: the call paths (five frames up) that led to this function, by time under it. */
const CALLERS_OF = values.callers
/** With --part: the functions whose own time that part of the accept path is made of. */
const PART = values.part

/** A short place for a script URL: the package under node_modules, or the path under the repository. */
function placeOf (url: string): string {
  if (url === '') return '(native)'
  if (url.startsWith('node:')) return url
  const modules = url.lastIndexOf('/node_modules/')
  if (modules !== -1) return url.slice(modules + '/node_modules/'.length)
  const repo = /\/(services|bench|loadtest)\//.exec(url)
  return repo === null ? url : url.slice(repo.index + 1)
}

function packageOf (url: string): string {
  const place = placeOf(url)
  if (place.startsWith('node:')) return 'node: (Node.js internals)'
  if (place === '(native)') return '(native / VM)'
  const parts = place.split('/')
  if (place.startsWith('services/')) return parts.slice(0, 4).join('/')
  return parts[0]?.startsWith('@') === true ? `${parts[0]}/${parts[1]}` : parts[0] ?? place
}

/**
 * The part of the accept path a frame belongs to, by its script: checked from a sample's
 * leaf towards the root, the first frame that names a part owns the sample. Node's own
 * crypto, buffer and stream internals name none, so they count for the library that called
 * them (a Diffie-Hellman for Noise, a socket write for the TCP transport).
 */
const PARTS: Array<[string, (url: string, name: string) => boolean]> = [
  ['garbage collection', (_, name) => name === '(garbage collector)'],
  ['Noise (handshake and transport encryption)', (url) => /libp2p-noise|as-chacha20poly1305|as-sha256|@noble\/hashes/.test(url)],
  ['ed25519 and keys (@libp2p/crypto)', (url) => url.includes('/@libp2p/crypto/')],
  ['yamux', (url) => url.includes('libp2p-yamux') || url.includes('/@libp2p/yamux/')],
  ['multistream-select', (url) => url.includes('multistream-select')],
  ['identify', (url) => url.includes('/@libp2p/identify/')],
  ['metrics (prometheus-metrics, prom-client)', (url) => url.includes('prometheus-metrics') || url.includes('/prom-client/')],
  ['logging (pino, libp2p logger)', (url) => url.includes('/pino/') || url.includes('/@libp2p/logger/') || url.includes('/weald/') || url.includes('services/beacon/src/logging/')],
  ['Pharos (services/)', (url) => /\/services\//.test(url) && !url.includes('/node_modules/')],
  ['peer store', (url) => url.includes('/@libp2p/peer-store/')],
  ['libp2p upgrader', (url) => url.includes('/libp2p/dist/src/upgrader.js')],
  ['libp2p connection', (url) => url.includes('/libp2p/dist/src/connection.js')],
  ['libp2p connection manager', (url) => url.includes('/libp2p/dist/src/connection-manager/')],
  ['libp2p (other)', (url) => url.includes('/node_modules/libp2p/')],
  ['TCP transport and sockets', (url) => url.includes('/@libp2p/tcp/') || url === 'node:net' || url.startsWith('node:internal/stream_base_commons')],
  ['stream plumbing (@libp2p/utils, uint8arraylist, main-event)', (url) => /\/@libp2p\/utils\/|\/uint8arraylist\/|\/main-event\/|\/race-signal\/|\/any-signal\//.test(url)],
  ['multiaddr and peer IDs', (url) => /\/@multiformats\/|\/multiformats\/|\/@libp2p\/peer-id\//.test(url)],
  ['protobuf (protons)', (url) => url.includes('/protons-runtime/')]
]

function partOf (frames: readonly ProfileNode[]): string {
  for (const frame of frames) {
    const part = PARTS.find(([, test]) => test(frame.callFrame.url, frame.callFrame.functionName))
    if (part !== undefined) return part[0]
  }
  const leaf = frames[0]
  return leaf === undefined ? '(unknown)' : leaf.callFrame.functionName.startsWith('(') ? leaf.callFrame.functionName : `other: ${packageOf(leaf.callFrame.url)}`
}

const frameKey = (node: ProfileNode): string => {
  const { functionName, url, lineNumber } = node.callFrame
  return `${functionName === '' ? '(anonymous)' : functionName} ${placeOf(url)}${url === '' ? '' : `:${lineNumber + 1}`}`
}

function summarise (profile: CpuProfile, window: Window): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const self = new Map<string, number>()
  const selfByPackage = new Map<string, number>()
  const total = new Map<string, number>()
  const byPart = new Map<string, number>()
  const callers = new Map<string, number>()
  const inPart = new Map<string, number>()
  let busy = 0
  let idle = 0
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    const next = profile.timeDeltas[i + 1] ?? 0
    if (at < window.fromMicros || at >= window.toMicros) continue
    const node = byId.get(profile.samples[i] ?? -1)
    if (node === undefined) continue
    const name = node.callFrame.functionName
    if (name === '(idle)') { idle += next; continue }
    busy += next
    const key = frameKey(node)
    self.set(key, (self.get(key) ?? 0) + next)
    const pkg = name.startsWith('(') ? name : packageOf(node.callFrame.url)
    selfByPackage.set(pkg, (selfByPackage.get(pkg) ?? 0) + next)
    const stack: ProfileNode[] = []
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)
      if (frame !== undefined && frame.callFrame.functionName !== '(root)') stack.push(frame)
    }
    const part = partOf(stack)
    byPart.set(part, (byPart.get(part) ?? 0) + next)
    if (PART !== undefined && part.startsWith(PART)) inPart.set(key, (inPart.get(key) ?? 0) + next)
    const seen = new Set<string>()
    for (const frame of stack) {
      const frameName = frameKey(frame)
      if (seen.has(frameName)) continue
      seen.add(frameName)
      total.set(frameName, (total.get(frameName) ?? 0) + next)
    }
    const called = CALLERS_OF === undefined ? -1 : stack.findIndex((frame) => frame.callFrame.functionName === CALLERS_OF)
    if (called !== -1) {
      const path = stack.slice(called, called + 6).map(frameKey).join(' ← ')
      callers.set(path, (callers.get(path) ?? 0) + next)
    }
  }
  const ms = (micros: number): string => (micros / 1000).toFixed(1)
  const pct = (micros: number): string => (100 * micros / busy).toFixed(1)
  const table = (title: string, entries: Map<string, number>, top: number): string => {
    const rows = [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)
    return `\n${title}\n| ms | % of busy | |\n|---:|---:|---|\n${rows.map(([key, micros]) => `| ${ms(micros)} | ${pct(micros)} | ${key} |`).join('\n')}\n`
  }
  const seconds = (window.toMicros - window.fromMicros) / 1e6
  return `## ${window.label} (pid ${window.pid}): ${seconds.toFixed(1)} s window, busy ${ms(busy)} ms, idle ${ms(idle)} ms\n` +
    table('Self time by part of the accept path (the deepest frame that names one)', byPart, TOP) +
    table('Self time by package', selfByPackage, TOP) +
    table('Self time by function', self, TOP) +
    table('Total (inclusive) time by function', total, TOP) +
    (CALLERS_OF === undefined ? '' : table(`Call paths into ${CALLERS_OF}`, callers, TOP)) +
    (PART === undefined ? '' : table(`Self time by function within "${PART}…"`, inPart, TOP))
}

const windows = JSON.parse(await readFile(join(dir, 'windows.json'), 'utf8')) as Window[]
const files = (await readdir(dir)).filter((name) => name.endsWith('.cpuprofile'))
for (const window of windows) {
  // node names its profiles CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; the main thread's is thread 0.
  const file = files.find((name) => name.split('.')[3] === String(window.pid) && name.split('.')[4] === '0')
  if (file === undefined) {
    process.stdout.write(`## ${window.label} (pid ${window.pid}): no profile in ${dir}\n`)
    continue
  }
  const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile
  process.stdout.write(`${summarise(profile, window)}\n`)
}
