/**
 * Protobuf codec benchmark: `node bench/codec/run.ts [--quick] [--json]`.
 *
 * CPU per frame of the shared protobuf codec (services/protocol/src/protobuf.ts) on the overlay
 * frames a worker encodes and decodes most under gossip load (issue 18): a Plumtree GOSSIP
 * with a 1 KiB payload, and an IHAVE of 64 entries (many small nested messages). The baseline,
 * measured in the same run on the same frames, is the floor any codec of these bytes pays:
 * allocating a Uint8Array of the frame's size and copying the frame into it. The ratio says
 * how many such copies one encode or decode costs. (The hand-written codecs this one replaced
 * (issue 22) are gone, so they cannot be measured beside it; wire-golden.test.ts pins that
 * this one writes and reads exactly what they did.)
 *
 * Figures are nanoseconds of this process's user CPU per frame, the median of several rounds
 * after a warm-up, so other load on the machine counts less than in wall time. No services.
 */
import os from 'node:os'
import { decodePlumtree, encodePlumtree } from '@pharos/protocol/overlay/index.ts'
import type { PlumtreeFrame } from '@pharos/protocol/overlay/index.ts'
import { benchFlags, figure, printResult } from '../contract.ts'
import type { BenchFigure } from '../contract.ts'

const flags = benchFlags()
const ITERATIONS = flags.quick ? 20_000 : 100_000
const ROUNDS = flags.quick ? 5 : 15

/** Median user-CPU nanoseconds per call of `task`, over `ROUNDS` rounds of `ITERATIONS` calls (after one warm-up round). */
function nsPerCall (task: () => number): number {
  let sink = 0
  const round = (): number => {
    const started = process.cpuUsage().user
    for (let i = 0; i < ITERATIONS; i++) sink += task()
    return (process.cpuUsage().user - started) * 1000 / ITERATIONS
  }
  round()
  const times = Array.from({ length: ROUNDS }, round).sort((a, b) => a - b)
  if (sink === 0) throw new Error('the task returned nothing: the measurement may have been optimised away')
  return times[Math.floor(times.length / 2)] ?? 0
}

const topic = '/pharos/content'
const origin = '12D3KooWSoeYKbpkb5UoL2T5eiomWRHdxR9cPC4tk11gKU89fFwT'
const frames: Array<{ name: string, frame: PlumtreeFrame }> = [
  {
    name: 'GOSSIP, 1 KiB payload',
    frame: { topic, message: { type: 'gossip', id: 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku', round: 3, origin, payload: Uint8Array.from({ length: 1024 }, (_, i) => i & 0xff) } }
  },
  {
    name: 'IHAVE of 64 entries',
    frame: { topic, message: { type: 'ihave', entries: Array.from({ length: 64 }, (_, i) => ({ id: `bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxq${String(i).padStart(5, '0')}`, round: i % 8 })) } }
  }
]

const figures: BenchFigure[] = []
const rows: string[] = []
for (const { name, frame } of frames) {
  console.error(`codec: ${name}`)
  const bytes = encodePlumtree(frame)
  const decoded = decodePlumtree(bytes)
  if (!decoded.ok) throw new Error(`${name}: the frame does not decode (${decoded.code}: ${decoded.detail})`)
  const copy = nsPerCall(() => {
    const out = new Uint8Array(bytes.length)
    out.set(bytes)
    return out.length
  })
  const encode = nsPerCall(() => encodePlumtree(frame).length)
  const decode = nsPerCall(() => decodePlumtree(bytes).ok ? 1 : 0)
  const baseline = { label: `allocate + copy ${bytes.length} bytes`, value: Number(copy.toFixed(1)) }
  figures.push(figure(`encode ${name} (${bytes.length} bytes)`, Number(encode.toFixed(1)), 'ns', baseline, 'lower'))
  figures.push(figure(`decode ${name} (${bytes.length} bytes)`, Number(decode.toFixed(1)), 'ns', baseline, 'lower'))
  rows.push(`| ${name} | ${bytes.length} | ${encode.toFixed(0)} | ${decode.toFixed(0)} | ${copy.toFixed(0)} | ${(encode / copy).toFixed(1)} | ${(decode / copy).toFixed(1)} |`)
}

if (flags.json) {
  printResult({ name: 'codec', figures, notes: [`user-CPU ns per frame, median of ${ROUNDS} rounds of ${ITERATIONS} after one warm-up round`] })
} else {
  console.log(`Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), median of ${ROUNDS} rounds of ${ITERATIONS}\n`)
  console.log('| frame | bytes | encode ns | decode ns | allocate + copy ns | encode ratio | decode ratio |')
  console.log('|---|---:|---:|---:|---:|---:|---:|')
  for (const row of rows) console.log(row)
}
