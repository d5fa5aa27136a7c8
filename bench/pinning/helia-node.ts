/**
 * One Helia node in a process of its own, for bench/pinning/run.ts, so it has an event loop
 * to itself as the worker has: createHeliaLight with @helia/bitswap, blockstore-fs, js-libp2p
 * TCP + Noise + Yamux on loopback. Driven over IPC, one request at a time:
 *
 * - `{ type: 'add', bytes }` → `{ type: 'added', cid }`: a random file of that size in UnixFS;
 * - `{ type: 'fetch', from, cid }` → `{ type: 'fetched', seconds, blocks, bytes }`: dials
 *   `from` and fetches the whole DAG over Bitswap (fetchDag, the pin walk's model);
 * - `{ type: 'stop' }` → stops and exits.
 *
 * It says `{ type: 'ready', multiaddrs }` once it listens.
 */
import { randomBytes } from 'node:crypto'
import { unixfs } from '@helia/unixfs'
import { CID } from 'multiformats/cid'
import { fetchDag, heliaNode } from './helia.ts'

type Request = { type: 'add', bytes: number } | { type: 'fetch', from: string[], cid: string } | { type: 'stop' }

const send = (message: unknown): void => { process.send?.(message) }
const node = await heliaNode()
process.on('message', (request: Request) => {
  void (async () => {
    try {
      switch (request.type) {
        case 'add': {
          const cid = await unixfs(node.helia).addBytes(new Uint8Array(randomBytes(request.bytes)))
          send({ type: 'added', cid: cid.toString() })
          break
        }
        case 'fetch':
          send({ type: 'fetched', ...await fetchDag(node, request.from, CID.parse(request.cid)) })
          break
        case 'stop':
          await node.stop()
          process.exit(0)
      }
    } catch (err) {
      send({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) })
    }
  })()
})
send({ type: 'ready', multiaddrs: node.node.getMultiaddrs().map(String) })
