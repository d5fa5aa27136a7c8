/**
 * Two peers and a beacon, with the peer SDK: an author publishes two posts through the
 * beacon, waits until the beacon holds them pinned and goes offline; a second peer then
 * fetches the author's log (verified entry by entry) and the posts (over Bitswap, from the
 * beacon) and prints them.
 *
 *   npm run example:publish-and-fetch -- <beacon multiaddr> <admin url> <admin token>
 *   e.g. … /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW… http://127.0.0.1:8080 "$(cat data/admin-token)"
 *
 * Only registered accounts may join a beacon's overlay, so the example registers its two
 * fresh keys through the admin API first (an app's operator does this once per user).
 */
import { createPharosPeer, generateKey } from '../src/index.ts'
import type { PharosPeer } from '../src/index.ts'

const [beacon, adminUrl, adminToken] = process.argv.slice(2)
if (beacon === undefined || adminUrl === undefined || adminToken === undefined) {
  console.error('usage: publish-and-fetch.ts <beacon multiaddr with /p2p/<peer id>> <admin url> <admin token>')
  process.exit(2)
}

async function register (peer: PharosPeer, label: string): Promise<void> {
  const response = await fetch(`${adminUrl}/v1/accounts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ peerId: peer.peerId.toString(), label })
  })
  if (!response.ok) throw new Error(`registering ${label}: HTTP ${response.status} ${await response.text()}`)
}

const signal = AbortSignal.timeout(120_000)
const author = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [beacon] })
const reader = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [beacon] })
await register(author, 'example author')
await register(reader, 'example reader')

// The author: join, publish two posts, wait until the beacon has them pinned, go offline.
await author.start({ signal })
const first = await author.publishPost({ text: 'Hello from the peer SDK' }, { signal })
const second = await author.publishPost({
  text: 'A post with a file',
  attachments: [{ name: 'hello.txt', bytes: new TextEncoder().encode('attached bytes\n') }]
}, { signal })
await author.waitUntilHeld([first.cid, second.cid], { signal })
console.log(JSON.stringify({ published: [first, second].map(({ cid, seq }) => ({ seq, cid: cid.toString() })), pinned: true }))
const authorId = author.peerId.toString()
await author.stop()

// The reader: fetch and verify the whole log, then each post, from the beacon alone.
await reader.start({ signal })
const log = await reader.fetchLog(authorId, { signal })
for (const block of log.toReversed()) {
  const post = await reader.fetchPost(block, { signal })
  console.log(JSON.stringify({
    seq: block.entry.seq,
    cid: block.cid.toString(),
    text: post.text,
    attachments: post.attachments.map(({ name, bytes }) => ({ name, text: new TextDecoder().decode(bytes) }))
  }))
}
await reader.stop()
