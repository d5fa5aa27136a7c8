import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { unixfs } from '@helia/unixfs'
import { CarBlockIterator } from '@ipld/car'
import { Ajv } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { MemoryBlockstore } from 'blockstore-core'
import { exporter } from 'ipfs-unixfs-exporter'
import type { CID } from 'multiformats/cid'
import { Registry } from 'prom-client'
import { load as parseYaml } from 'js-yaml'
import { loadConfig } from '../../src/config/load.ts'
import type { Config } from '../../src/config/schema.ts'
import { createLogger } from '../../src/logging/logger.ts'
import type { Logger } from '../../src/logging/logger.ts'
import { createStorageMetrics } from '../../src/pinning/storage-metrics.ts'
import { createBeaconHelia } from '../../src/storage/beacon-helia.ts'
import type { BeaconHelia } from '../../src/storage/beacon-helia.ts'
import { digestMatches } from '../../src/storage/hashers.ts'
import { createClientPeer } from './client-peer.ts'
import type { ClientPeer } from './client-peer.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'

// ajv-formats is CommonJS with a default export; under ESM the function is `.default`.
const addFormats = addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv }

/** Test logs are silent unless TEST_LOG_LEVEL says otherwise (e.g. TEST_LOG_LEVEL=debug). */
export function testLogger (): Logger {
  return createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent')
}

/**
 * A worker config on loopback, free ports and a fresh data dir (the in-process env every test
 * shares), with GC off and a fast pin poll; `env` overrides.
 */
export async function testConfig (env: Record<string, string> = {}): Promise<Config> {
  return loadConfig(await inProcessEnv({ PHAROS_GC_INTERVAL_MS: '0', PHAROS_PIN_POLL_INTERVAL_MS: '100', ...env }))
}


/** A network app's peer holding content: libp2p on loopback TCP, Helia with Bitswap, blocks in memory. */
export interface ContentPeer {
  node: ClientPeer
  helia: BeaconHelia
  blockstore: MemoryBlockstore
  /** Dialable addresses, each ending in /p2p/<peer ID>. */
  multiaddrs: () => string[]
  addFile: (bytes: Uint8Array) => Promise<CID>
  catFile: (cid: CID, signal: AbortSignal) => Promise<Uint8Array>
  stop: () => Promise<void>
}

export interface ContentPeerOptions {
  /** Awaited before the peer reads a block to serve it (or to read it itself): slows or holds transfers. */
  beforeRead?: (cid: CID) => Promise<void>
}

export async function createContentPeer (options: ContentPeerOptions = {}): Promise<ContentPeer> {
  const node = await createClientPeer({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  const blockstore = new MemoryBlockstore()
  const { beforeRead } = options
  const served: Blockstore = beforeRead === undefined
    ? blockstore
    : new Proxy(blockstore, {
      get (target, property) {
        if (property === 'get') {
          return async function * (cid: CID, abort?: AbortOptions) {
            await beforeRead(cid)
            yield * target.get(cid, abort)
          }
        }
        const value: unknown = Reflect.get(target, property, target)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
  const helia = createBeaconHelia({ libp2p: node, blockstore: served, log: testLogger(), metrics: createStorageMetrics(new Registry()) })
  await helia.start()
  const fs = unixfs(helia)
  return {
    node,
    helia,
    blockstore,
    multiaddrs: () => node.getMultiaddrs().map((addr) => addr.toString()),
    addFile: async (bytes) => await fs.addBytes(bytes),
    catFile: async (cid, signal) => {
      const chunks: Uint8Array[] = []
      for await (const chunk of fs.cat(cid, { signal })) chunks.push(chunk)
      return Buffer.concat(chunks)
    },
    stop: async () => {
      await helia.stop()
      await node.stop()
    }
  }
}

export const MiB = 1024 * 1024

export function randomContent (bytes: number): Uint8Array {
  return new Uint8Array(randomBytes(bytes))
}

export function sha256Hex (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/**
 * A JSON response body. Tests check bodies against the spec's own schemas at run time, so
 * the compiler is not asked to know their shape.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type JsonBody = any

/** An HTTP client for one worker and one bearer token. */
export function httpClient (baseUrl: string, token: string) {
  return async function call (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: JsonBody, headers: Headers }> {
    const response = await fetch(new URL(path, baseUrl), {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await response.text()
    let parsed: unknown = text
    if ((response.headers.get('content-type') ?? '').includes('json') && text.length > 0) parsed = JSON.parse(text)
    return { status: response.status, body: parsed, headers: response.headers }
  }
}

export type HttpCall = ReturnType<typeof httpClient>

/** Polls GET /pins/{id} until the pin reaches one of `statuses`. */
export async function waitForPin (call: HttpCall, id: string, statuses: string[] = ['pinned', 'failed'], timeoutMs = 60_000): Promise<JsonBody> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const { status, body } = await call('GET', `/pins/${id}`)
    assert.equal(status, 200, JSON.stringify(body))
    if (statuses.includes(body.status)) return body
    if (Date.now() > deadline) assert.fail(`pin ${id} is still ${body.status} after ${timeoutMs} ms: ${JSON.stringify(body)}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * Validators for the IPFS Pinning Service API's own component schemas, compiled from the
 * spec's YAML (not from our TypeBox copies).
 */
export async function pinningSpecValidator (): Promise<(schema: string, value: unknown) => void> {
  // js-yaml, because the spec's long description is a quoted scalar whose lines start at
  // column 0, which strict YAML 1.2 parsers refuse.
  const spec = parseYaml(await readFile(new URL('../../../../docs/specs/ipfs-pinning-service.yaml', import.meta.url), 'utf8')) as Record<string, unknown>
  // OpenAPI 3.0 documents carry keywords JSON Schema does not know (example, x-logo, …).
  const ajv = new Ajv({ strict: false, allErrors: true })
  addFormats.default(ajv)
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 })
  ajv.addSchema(spec, 'pinning-spec')
  return (schema, value) => {
    const validate = ajv.getSchema(`pinning-spec#/components/schemas/${schema}`)
    assert.ok(validate !== undefined, `the spec has no schema ${schema}`)
    assert.ok(validate(value), `${schema} invalid per the spec: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`)
  }
}

export interface VerifiedCar {
  roots: CID[]
  /** Every block, in the order the CAR carried them, each checked against its CID. */
  blocks: Array<{ cid: CID, bytes: Uint8Array }>
}

/** Parses a CAR and checks every block's bytes against its CID's multihash. */
export async function verifyCar (bytes: Uint8Array): Promise<VerifiedCar> {
  const iterator = await CarBlockIterator.fromBytes(bytes)
  const roots = await iterator.getRoots()
  const blocks: VerifiedCar['blocks'] = []
  for await (const { cid, bytes: data } of iterator) {
    assert.ok(await digestMatches(cid.multihash.code, cid.multihash.digest, data), `block ${cid.toString()} in the CAR does not match its CID`)
    blocks.push({ cid, bytes: data })
  }
  return { roots, blocks }
}

/** Reassembles a UnixFS file from CAR blocks alone: proof the CAR holds the whole DAG. */
export async function fileFromBlocks (root: CID, blocks: VerifiedCar['blocks']): Promise<Uint8Array> {
  const store = new MemoryBlockstore()
  for (const block of blocks) await store.put(block.cid, block.bytes)
  const entry = await exporter(root, store)
  assert.equal(entry.type, 'file', `${root.toString()} is not a UnixFS file`)
  const chunks: Uint8Array[] = []
  for await (const chunk of entry.content()) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** A metric's value from a Prometheus text exposition (0 when absent). */
export function metricValue (exposition: string, name: string): number {
  const line = exposition.split('\n').find((entry) => entry.startsWith(name + ' ') || entry.startsWith(name + '{'))
  return line === undefined ? 0 : Number(line.split(' ').at(-1))
}

