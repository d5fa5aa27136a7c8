/**
 * Link extraction benchmark: `node bench/dag-links/run.ts`.
 *
 * CPU per block of the link extraction that every pin walk and gateway CAR runs on blocks
 * an attacker may have written (issue 17, item 11), beside the extraction it replaced,
 * measured in the same run on the same blocks:
 *
 * - `scanLinks` (services/beacon/src/storage/dag-links.ts): one pass over cborg's tokens,
 *   no JS value built, no recursion;
 * - baseline: `@ipld/dag-cbor` decode, then a recursive generator with one `yield*` per
 *   nesting level (the code before issue 17), whose cost grows with the square of depth.
 *
 * Blocks: a CID-dense 1 MiB block (~26,000 links); a block of lists nested 2,000 deep, each
 * holding a link and the next list (1,000 with `--quick`; the baseline's decoder overflows
 * the call stack a few thousand levels down, so deeper blocks have no baseline); and 1 MiB
 * of empty maps, the most nodes a byte can hold. Figures are CPU milliseconds of this
 * process (user time), the median of several runs, so other load on the machine counts
 * less than in wall time. No services needed. `--json` prints the result as
 * bench/contract.ts describes (for `npm run bench`).
 */
import os from 'node:os'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { scanLinks } from '@pharos/beacon/storage/dag-links.ts'
import { benchFlags, figure, printResult } from '../contract.ts'
import type { BenchFigure } from '../contract.ts'

const flags = benchFlags()
const DEPTH = flags.quick ? 1000 : 2000
const ROUNDS = flags.quick ? 5 : 15

/** The extraction before issue 17: decode the block, then one `yield*` per nesting level. */
function * recursiveCids (value: unknown): Generator<CID> {
  const cid = CID.asCID(value)
  if (cid !== null) {
    yield cid
    return
  }
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return
  for (const child of Array.isArray(value) ? value : Object.values(value)) yield * recursiveCids(child)
}

/** Median CPU milliseconds of `rounds` runs of `task` (after one warm-up run). */
function medianMs (rounds: number, task: () => number): { ms: number, links: number } {
  let links = task()
  const times: number[] = []
  for (let round = 0; round < rounds; round++) {
    const started = process.cpuUsage().user
    links = task()
    times.push((process.cpuUsage().user - started) / 1000)
  }
  times.sort((a, b) => a - b)
  return { ms: times[Math.floor(times.length / 2)] ?? 0, links }
}

async function block (bytes: Uint8Array): Promise<{ cid: CID, bytes: Uint8Array }> {
  return { cid: CID.createV1(dagCbor.code, await sha256.digest(bytes)), bytes }
}

const links: CID[] = []
for (let i = 0; links.length * 40 < 1024 * 1024; i++) links.push(CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(`leaf ${i}`))))
let nested: unknown = links[0]
for (let level = 0; level < DEPTH; level++) nested = [links[level], nested]
// A definite-length list (0x9a, 32-bit count) of one-byte empty maps (0xa0).
const emptyMaps = new Uint8Array(1024 * 1024)
emptyMaps[0] = 0x9a
new DataView(emptyMaps.buffer).setUint32(1, emptyMaps.length - 5)
emptyMaps.fill(0xa0, 5)
const blocks = [
  { name: `CID-dense ${(dagCbor.encode({ links }).length / 1024 / 1024).toFixed(2)} MiB block (${links.length} links)`, ...await block(dagCbor.encode({ links })) },
  { name: `lists nested ${DEPTH} deep, a link in each`, ...await block(dagCbor.encode(nested)) },
  { name: '1 MiB of empty maps', ...await block(emptyMaps) }
]

const figures: BenchFigure[] = []
const rows: string[] = []
for (const { name, cid, bytes } of blocks) {
  console.error(`dag-links: ${name}`)
  const scanned = medianMs(ROUNDS, () => scanLinks(cid, bytes, Number.MAX_SAFE_INTEGER).links.length)
  const recursive = medianMs(ROUNDS, () => [...recursiveCids(dagCbor.decode(bytes))].length)
  if (scanned.links !== recursive.links) throw new Error(`${name}: scanLinks found ${scanned.links} links, the baseline ${recursive.links}`)
  figures.push(figure(`scanLinks, ${name}`, Number(scanned.ms.toFixed(2)), 'ms', { label: `dag-cbor decode + recursive walk, ${name}`, value: Number(recursive.ms.toFixed(2)) }, 'lower'))
  rows.push(`| ${name} | ${scanned.ms.toFixed(1)} | ${recursive.ms.toFixed(1)} | ${(scanned.ms / recursive.ms).toFixed(2)} |`)
}

if (flags.json) {
  printResult({ name: 'dag-links', figures, notes: [`CPU ms, median of ${ROUNDS} runs after one warm-up; nesting depth ${DEPTH}`] })
} else {
  console.log(`Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), median of ${ROUNDS} runs\n`)
  console.log('| block | scanLinks CPU ms | decode + recursive walk CPU ms | ratio |')
  console.log('|---|---:|---:|---:|')
  for (const row of rows) console.log(row)
}
