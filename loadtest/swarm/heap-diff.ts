/**
 * Diffs two V8 heap snapshots of a worker taken at two connection counts (heap-steps.ts) and
 * says what each extra connection keeps on the heap: live bytes by kind of object, divided by
 * the difference in connections.
 *
 *   node loadtest/swarm/heap-diff.ts <smaller.heapsnapshot> <larger.heapsnapshot> (<Δconnections> | --per YamuxMuxer)
 *     [--top 40] [--detail <group prefix>] [--retained]
 *
 * `--per YamuxMuxer` takes Δconnections from the snapshots themselves: the difference in
 * instances of a class every connection has exactly one of.
 *
 * Objects are grouped by constructor (closures by function name). Arrays, hidden V8 objects,
 * strings and the like have no constructor of their own, so they are grouped by their first
 * strong retainer's constructor and the edge they hang from (`(array) <- Map.table`), which
 * says whose they are. Self sizes only: a connection's whole cost is the sum of its rows.
 * `--retained` sums each class's instances' retained sizes instead (dominator tree): what a
 * connection's Connection, muxer or socket holds in all. `--detail Object` splits the groups starting with "Object" by their retainer path, five
 * retainers up, to say whose they are.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]], edge_fields: string[], edge_types: [string[], ...unknown[]] } }
  nodes: number[]
  edges: number[]
  strings: string[]
}

interface Group { count: number, bytes: number }

/** A snapshot's flat arrays and where each field sits in a node's or an edge's record. */
function readSnapshot (path: string) {
  const data = JSON.parse(readFileSync(path, 'utf8')) as Snapshot
  const meta = data.snapshot.meta
  const nodeFieldCount = meta.node_fields.length
  return {
    nodes: data.nodes,
    edges: data.edges,
    strings: data.strings,
    nodeFieldCount,
    edgeFieldCount: meta.edge_fields.length,
    nodeCount: data.nodes.length / nodeFieldCount,
    typeOffset: meta.node_fields.indexOf('type'),
    nameOffset: meta.node_fields.indexOf('name'),
    sizeOffset: meta.node_fields.indexOf('self_size'),
    edgeCountOffset: meta.node_fields.indexOf('edge_count'),
    edgeTypeOffset: meta.edge_fields.indexOf('type'),
    edgeNameOffset: meta.edge_fields.indexOf('name_or_index'),
    edgeToOffset: meta.edge_fields.indexOf('to_node'),
    nodeTypes: meta.node_types[0],
    edgeTypes: meta.edge_types[0]
  }
}

/** Live bytes and counts per group in one snapshot; with `detail`, the groups whose key starts with it are split by their retainer path. */
function groups (path: string, detail?: string): Map<string, Group> {
  const { nodes, edges, strings, nodeFieldCount, edgeFieldCount, nodeCount, typeOffset, nameOffset, sizeOffset, edgeCountOffset, edgeTypeOffset, edgeNameOffset, edgeToOffset, nodeTypes, edgeTypes } = readSnapshot(path)
  const typeOf = (node: number): string => nodeTypes[nodes[node * nodeFieldCount + typeOffset] ?? 0] ?? '?'
  const nameOf = (node: number): string => strings[nodes[node * nodeFieldCount + nameOffset] ?? 0] ?? '?'

  // The first strong retainer of each node, and the edge's name.
  const retainer = new Int32Array(nodeCount).fill(-1)
  const retainerEdge: string[] = new Array<string>(nodeCount)
  let edge = 0
  for (let node = 0; node < nodeCount; node++) {
    const edgeCount = nodes[node * nodeFieldCount + edgeCountOffset] ?? 0
    for (let k = 0; k < edgeCount; k++, edge += edgeFieldCount) {
      const edgeType = edgeTypes[edges[edge + edgeTypeOffset] ?? 0] ?? ''
      if (edgeType === 'weak' || edgeType === 'shortcut') continue
      const to = (edges[edge + edgeToOffset] ?? 0) / nodeFieldCount
      if (retainer[to] !== -1) continue
      retainer[to] = node
      const name = edges[edge + edgeNameOffset] ?? 0
      retainerEdge[to] = edgeType === 'element' || edgeType === 'hidden' ? `[${edgeType}]` : strings[name] ?? '?'
    }
  }
  const ownerName = (node: number): string => {
    // Climb through nameless parts (arrays, hidden, internal) to the first named object.
    let at = node
    for (let hops = 0; hops < 4; hops++) {
      const parent = retainer[at] ?? -1
      if (parent === -1) return '(root)'
      const type = typeOf(parent)
      if (type === 'object' || type === 'closure' || type === 'native') return `${type === 'closure' ? 'fn ' : ''}${nameOf(parent)}.${retainerEdge[at] ?? '?'}`
      at = parent
    }
    return `…${nameOf(at)}`
  }

  /** Up to `depth` retainers: `Name.edge < Name.edge < …`, nearest first. */
  const retainerPath = (node: number, depth = 5): string => {
    const parts: string[] = []
    let at = node
    for (let hops = 0; hops < depth; hops++) {
      const parent = retainer[at] ?? -1
      if (parent === -1) { parts.push('(root)'); break }
      const type = typeOf(parent)
      const name = type === 'object' || type === 'closure' || type === 'native' ? nameOf(parent).slice(0, 40) : `(${type})`
      parts.push(`${name}.${retainerEdge[at] ?? '?'}`)
      at = parent
    }
    return parts.join(' < ')
  }

  const result = new Map<string, Group>()
  for (let node = 0; node < nodeCount; node++) {
    const type = typeOf(node)
    const size = nodes[node * nodeFieldCount + sizeOffset] ?? 0
    let key: string
    if (type === 'object' || type === 'native') key = `${type === 'native' ? 'native ' : ''}${nameOf(node)}`
    else if (type === 'closure') key = `fn ${nameOf(node) === '' ? '(anonymous)' : nameOf(node)} <- ${ownerName(node)}`
    else if (type === 'string' || type === 'concatenated string' || type === 'sliced string') key = `(string) <- ${ownerName(node)}`
    else key = `(${type}) ${type === 'code' || type === 'number' ? '' : nameOf(node).slice(0, 40)} <- ${ownerName(node)}`
    if (detail !== undefined) {
      if (!key.startsWith(detail)) continue
      key = `${key} <= ${retainerPath(node)}`
    }
    const group = result.get(key) ?? { count: 0, bytes: 0 }
    group.count++
    group.bytes += size
    result.set(key, group)
  }
  return result
}

/**
 * Retained bytes per class of object: each instance's retained size (what freeing it alone
 * would free, from the dominator tree; Cooper, Harvey and Kennedy's iterative algorithm),
 * summed by constructor. Instances nested in one of their own class count twice.
 */
function retainedByClass (path: string): Map<string, Group> {
  const { nodes, edges, strings, nodeFieldCount, edgeFieldCount, nodeCount, typeOffset, nameOffset, sizeOffset, edgeCountOffset, edgeTypeOffset, edgeToOffset, nodeTypes, edgeTypes } = readSnapshot(path)
  const weak = edgeTypes.indexOf('weak')
  const firstEdge = new Int32Array(nodeCount + 1)
  for (let node = 0, edge = 0; node < nodeCount; node++) {
    firstEdge[node] = edge
    edge += (nodes[node * nodeFieldCount + edgeCountOffset] ?? 0) * edgeFieldCount
  }
  firstEdge[nodeCount] = edges.length
  const strong = (edge: number): boolean => edges[edge + edgeTypeOffset] !== weak
  const target = (edge: number): number => (edges[edge + edgeToOffset] ?? 0) / nodeFieldCount

  // Postorder from the root (node 0), iteratively.
  const order = new Int32Array(nodeCount).fill(-1)
  const postorder: number[] = []
  const stack: number[] = [0]
  const cursor = new Int32Array(nodeCount)
  const visited = new Uint8Array(nodeCount)
  visited[0] = 1
  cursor[0] = firstEdge[0] ?? 0
  while (stack.length > 0) {
    const node = stack[stack.length - 1] ?? 0
    const end = firstEdge[node + 1] ?? 0
    let pushed = false
    while ((cursor[node] ?? 0) < end) {
      const edge = cursor[node] ?? 0
      cursor[node] = edge + edgeFieldCount
      if (!strong(edge)) continue
      const to = target(edge)
      if (visited[to] === 1) continue
      visited[to] = 1
      cursor[to] = firstEdge[to] ?? 0
      stack.push(to)
      pushed = true
      break
    }
    if (!pushed) { stack.pop(); order[node] = postorder.length; postorder.push(node) }
  }
  // Predecessors (CSR).
  const predecessorCount = new Int32Array(nodeCount + 1)
  for (let node = 0; node < nodeCount; node++) {
    if (visited[node] !== 1) continue
    for (let edge = firstEdge[node] ?? 0; edge < (firstEdge[node + 1] ?? 0); edge += edgeFieldCount) if (strong(edge)) predecessorCount[target(edge) + 1] = (predecessorCount[target(edge) + 1] ?? 0) + 1
  }
  for (let node = 0; node < nodeCount; node++) predecessorCount[node + 1] = (predecessorCount[node + 1] ?? 0) + (predecessorCount[node] ?? 0)
  const predecessors = new Int32Array(predecessorCount[nodeCount] ?? 0)
  const fill = predecessorCount.slice()
  for (let node = 0; node < nodeCount; node++) {
    if (visited[node] !== 1) continue
    for (let edge = firstEdge[node] ?? 0; edge < (firstEdge[node + 1] ?? 0); edge += edgeFieldCount) {
      if (!strong(edge)) continue
      const to = target(edge)
      predecessors[fill[to] ?? 0] = node
      fill[to] = (fill[to] ?? 0) + 1
    }
  }
  const idom = new Int32Array(nodeCount).fill(-1)
  idom[0] = 0
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while ((order[a] ?? 0) < (order[b] ?? 0)) a = idom[a] ?? 0
      while ((order[b] ?? 0) < (order[a] ?? 0)) b = idom[b] ?? 0
    }
    return a
  }
  for (let changed = true; changed;) {
    changed = false
    for (let k = postorder.length - 2; k >= 0; k--) {
      const node = postorder[k] ?? 0
      let next = -1
      for (let p = predecessorCount[node] ?? 0; p < (predecessorCount[node + 1] ?? 0); p++) {
        const predecessor = predecessors[p] ?? 0
        if (idom[predecessor] === -1) continue
        next = next === -1 ? predecessor : intersect(predecessor, next)
      }
      if (next !== -1 && idom[node] !== next) { idom[node] = next; changed = true }
    }
  }
  const retained = new Float64Array(nodeCount)
  for (const node of postorder) retained[node] = (retained[node] ?? 0) + (nodes[node * nodeFieldCount + sizeOffset] ?? 0)
  for (const node of postorder) if (node !== 0) retained[idom[node] ?? 0] = (retained[idom[node] ?? 0] ?? 0) + (retained[node] ?? 0)
  const result = new Map<string, Group>()
  for (const node of postorder) {
    const type = nodeTypes[nodes[node * nodeFieldCount + typeOffset] ?? 0]
    if (type !== 'object' && type !== 'closure') continue
    const name = strings[nodes[node * nodeFieldCount + nameOffset] ?? 0] ?? '?'
    const key = type === 'closure' ? `fn ${name}` : name
    const group = result.get(key) ?? { count: 0, bytes: 0 }
    group.count++
    group.bytes += retained[node] ?? 0
    result.set(key, group)
  }
  return result
}

const { positionals, values } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '40' }, detail: { type: 'string' }, retained: { type: 'boolean', default: false }, per: { type: 'string' } } })
const [smallerPath, largerPath, deltaText] = positionals
if (smallerPath === undefined || largerPath === undefined || (deltaText === undefined && values.per === undefined)) {
  process.stderr.write('usage: heap-diff.ts <smaller.heapsnapshot> <larger.heapsnapshot> (<Δconnections> | --per <class>) [--top N] [--detail <group>] [--retained]\n')
  process.exit(2)
}
const smaller = values.retained ? retainedByClass(smallerPath) : groups(smallerPath, values.detail)
const larger = values.retained ? retainedByClass(largerPath) : groups(largerPath, values.detail)
// --per YamuxMuxer: the difference in instances of a class that every connection has one of.
const perClass = values.per === undefined ? undefined : values.detail === undefined && !values.retained ? [smaller, larger] : [groups(smallerPath), groups(largerPath)]
const delta = perClass === undefined ? Number(deltaText) : (perClass[1]?.get(values.per ?? '')?.count ?? 0) - (perClass[0]?.get(values.per ?? '')?.count ?? 0)
if (!(delta > 0)) {
  process.stderr.write(`heap-diff: Δconnections is ${delta}: give a positive number, or a class whose instances grew\n`)
  process.exit(2)
}
const rows = [...new Set([...smaller.keys(), ...larger.keys()])].map((key) => {
  const a = smaller.get(key) ?? { count: 0, bytes: 0 }
  const b = larger.get(key) ?? { count: 0, bytes: 0 }
  return { key, countPerConnection: (b.count - a.count) / delta, bytesPerConnection: (b.bytes - a.bytes) / delta }
}).sort((x, y) => y.bytesPerConnection - x.bytesPerConnection)
const total = rows.reduce((sum, row) => sum + row.bytesPerConnection, 0)
process.stdout.write(`${values.retained ? 'retained bytes by class (nested instances count twice; the total means nothing)' : 'live heap'} per connection: ${(total / 1024).toFixed(2)} KiB (${smallerPath} → ${largerPath}, Δ ${delta})\n`)
process.stdout.write('bytes/conn  objects/conn  group\n')
for (const row of rows.slice(0, Number(values.top))) {
  process.stdout.write(`${row.bytesPerConnection.toFixed(0).padStart(10)}  ${row.countPerConnection.toFixed(2).padStart(12)}  ${row.key}\n`)
}
