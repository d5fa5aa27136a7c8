/**
 * `node bench/overlay-connections/run.ts [--quick] [--json | --full-json] [--nodes 100] [--topics 4] [--minutes 2]`:
 * libp2p connections per node against overlay neighbours, for an overlay alone (no other
 * protocol, no dial of its own beyond each node's one bootstrap contact). Nodes 0–3 are the
 * bootstrap contacts; every other node dials contact `i mod 4` and joins every topic through
 * it, 50 ms apart, then the overlay runs (shuffles every 15 s) and is sampled every 15 s.
 * `--topics 4` is what a beacon and the SDK run (content, sync, keyexchange, audit): each
 * topic has its own HyParView, so a node's neighbours are the union of four active views.
 * Reported per sample: mean and max connections per node, mean distinct neighbours (over all
 * topics), mean connections the overlay dialled and still holds. docs/overlay-driver.md
 * records the figures ("Connections"). `--json` prints the bench contract's object
 * (bench/contract.ts): connections per node at the last sample beside the distinct overlay
 * neighbours per node, the connections the overlay needs; `--full-json` every sample.
 * `--quick` (for `npm run bench -- --quick`): 40 nodes for one minute, unless given.
 */
import { parseArgs } from 'node:util'
import { figure, printResult } from '../contract.ts'
import { createOverlayPeer } from '../../services/beacon/test/helpers/overlay-peer.ts'
import type { OverlayPeer } from '../../services/beacon/test/helpers/overlay-peer.ts'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    nodes: { type: 'string' },
    topics: { type: 'string', default: '4' },
    minutes: { type: 'string' },
    json: { type: 'boolean', default: false },
    'full-json': { type: 'boolean', default: false }
  }
})
const NODES = Number(values.nodes ?? (values.quick ? '40' : '100'))
const MINUTES = Number(values.minutes ?? (values.quick ? '1' : '2'))
const TOPICS = ['content', 'sync', 'keyexchange', 'audit'].slice(0, Number(values.topics))
const SAMPLE_MS = 15_000
const CONTACTS = 4
const log = (message: string): void => { process.stderr.write(`[overlay-connections] ${message}\n`) }

interface Sample { atSeconds: number, connections: number, maxConnections: number, neighbours: number, heldByOverlay: number }

const mean = (xs: readonly number[]): number => Math.round(10 * xs.reduce((sum, x) => sum + x, 0) / xs.length) / 10

function sample (nodes: readonly OverlayPeer[], atSeconds: number): Sample {
  const connections = nodes.map((node) => node.getConnections().filter((connection) => connection.status === 'open').length)
  const neighbours = nodes.map((node) => {
    const union = new Set<string>()
    for (const view of Object.values(node.services.overlay.snapshot())) for (const peer of view.active) union.add(peer)
    return union.size
  })
  // heldConnections is absent before connection hygiene: -1 then.
  const held = nodes.map((node) => (node.services.overlay as { heldConnections?: () => number }).heldConnections?.() ?? -1)
  return { atSeconds, connections: mean(connections), maxConnections: Math.max(...connections), neighbours: mean(neighbours), heldByOverlay: mean(held) }
}

async function main (): Promise<void> {
  const nodes: OverlayPeer[] = []
  for (let i = 0; i < NODES; i++) {
    const node = await createOverlayPeer({ network: 'pharos-bench', topics: TOPICS, networkSize: NODES })
    await node.start()
    nodes.push(node)
  }
  log(`${NODES} nodes started, ${TOPICS.length} topic(s)`)
  const started = Date.now()
  for (let i = 0; i < NODES; i++) {
    const node = nodes[i] as OverlayPeer
    const contact = nodes[i < CONTACTS ? 0 : i % CONTACTS] as OverlayPeer
    if (contact === node) continue
    await node.dial(contact.getMultiaddrs())
    for (const topic of TOPICS) node.services.overlay.join(topic, contact.peerId)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  log(`joined in ${Date.now() - started} ms`)
  const samples: Sample[] = []
  const end = started + MINUTES * 60_000
  for (let at = started + SAMPLE_MS; at <= end; at += SAMPLE_MS) {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())))
    const s = sample(nodes, Math.round((Date.now() - started) / 1000))
    samples.push(s)
    log(JSON.stringify(s))
  }
  await Promise.all(nodes.map(async (node) => { await node.stop() }))
  const result = { nodes: NODES, topics: TOPICS.length, samples }
  const last = samples.at(-1)
  if (values.json && last !== undefined) {
    printResult({
      name: 'overlay-connections',
      figures: [
        figure(`libp2p connections per node after ${last.atSeconds} s`, last.connections, 'connections', { label: 'distinct overlay neighbours per node (over all topics)', value: last.neighbours }, 'lower'),
        figure(`libp2p connections of the busiest node after ${last.atSeconds} s`, last.maxConnections, 'connections', { label: 'distinct overlay neighbours per node (over all topics)', value: last.neighbours }, 'lower')
      ],
      notes: [`${NODES} overlay nodes on loopback, ${TOPICS.length} topics, joined through 4 contacts, sampled every ${SAMPLE_MS / 1000} s for ${MINUTES} min; connections the overlay dialled and still holds: ${last.heldByOverlay} per node.`]
    })
  } else if (values['full-json']) {
    console.log(JSON.stringify(result))
  } else {
    console.log(samples.map((s) => `${s.atSeconds} s: ${s.connections} connections per node (max ${s.maxConnections}), ${s.neighbours} distinct neighbours, ${s.heldByOverlay} dialled by the overlay and held`).join('\n'))
  }
}

await main()
