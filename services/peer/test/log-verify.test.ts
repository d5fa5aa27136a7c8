/**
 * Log verification against hand-built logs: a good log verifies head first down to genesis,
 * and every way a chain can be broken is refused with a LogVerificationError (or a
 * MissingEntryError) that names the entry and the reason.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { encodeCbor, FEED_POST_ACTION, signEntry } from '@pharos/protocol/log/index.ts'
import type { EntryBlock } from '@pharos/protocol/log/index.ts'
import { LogVerificationError, MissingEntryError } from '../src/errors.ts'
import { generateKey, signerFor } from '../src/keys.ts'
import { verifyLog, walkLog } from '../src/log-verify.ts'

const CONTENT = CID.parse('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
const author = signerFor(await generateKey())
const stranger = signerFor(await generateKey())

/** A log of `length` entries by `signer`, genesis first. */
async function buildLog (length: number, signer = author, epoch = 1_700_000_000_000): Promise<EntryBlock[]> {
  const log: EntryBlock[] = []
  for (let seq = 0; seq < length; seq++) {
    const prev = log.at(-1)?.cid ?? null
    log.push(await signEntry({ seq, prev, action: FEED_POST_ACTION, timestamp: epoch + seq, params: { content: CONTENT } }, signer))
  }
  return log
}

const headFirst = (log: EntryBlock[]): Uint8Array[] => log.map((block) => block.bytes).reverse()

function refusedWith (reason: string, cid: CID | string, seq?: number) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof LogVerificationError, `expected LogVerificationError, got ${String(err)}`)
    assert.equal(err.reason, reason, err.message)
    assert.equal(err.cid, cid.toString(), err.message)
    if (seq !== undefined) assert.equal(err.seq, seq, err.message)
    assert.match(err.message, new RegExp(`entry ${cid.toString()}`))
    return true
  }
}

describe('log verification', () => {
  it('verifies a whole log, head first, down to genesis', async () => {
    const log = await buildLog(5)
    const verified = await verifyLog(author.peerId, headFirst(log))
    assert.deepEqual(verified.map((block) => block.entry.seq), [4, 3, 2, 1, 0])
    assert.deepEqual(verified.map((block) => block.cid.toString()), log.map((block) => block.cid.toString()).reverse())
    const head = log.at(-1) ?? assert.fail()
    assert.equal((await verifyLog(author.peerId, headFirst(log), { cid: head.cid, seq: 4 })).length, 5)
  })

  it('refuses an entry whose prev does not link to the next one down (broken chain)', async () => {
    const log = await buildLog(4)
    const fork = await buildLog(2, author, 1_800_000_000_000)
    // Head 3 → 2 → [fork's entry 1 instead of 1] → …
    const blocks = headFirst(log)
    blocks[2] = fork[1]?.bytes ?? assert.fail()
    await assert.rejects(verifyLog(author.peerId, blocks), refusedWith('broken-chain', log[1]?.cid ?? assert.fail(), 1))
  })

  it('refuses a skipped seq even when every link is a real entry', async () => {
    // An entry at seq 2 whose prev is genesis: signed and linked, but one seq is missing.
    const [genesis] = await buildLog(1)
    assert.ok(genesis)
    const skip = await signEntry({ seq: 2, prev: genesis.cid, action: FEED_POST_ACTION, timestamp: 1, params: { content: CONTENT } }, author)
    await assert.rejects(verifyLog(author.peerId, [skip.bytes, genesis.bytes]), refusedWith('bad-seq', genesis.cid, 0))
    // And a head announced at one seq that is another.
    await assert.rejects(verifyLog(author.peerId, [genesis.bytes], { cid: genesis.cid, seq: 3 }), refusedWith('bad-seq', genesis.cid, 0))
  })

  it('refuses a tampered signature and names the entry', async () => {
    const log = await buildLog(3)
    const middle = log[1] ?? assert.fail()
    const sig = middle.entry.sig.slice()
    sig[5] = (sig[5] ?? 0) ^ 0x01
    const tampered = encodeCbor({ ...middle.entry, sig })
    // The tampered block has another CID, so its parent's link exposes it first…
    await assert.rejects(verifyLog(author.peerId, [log[2]?.bytes ?? assert.fail(), tampered, log[0]?.bytes ?? assert.fail()]), refusedWith('broken-chain', middle.cid, 1))
    // …and as the head, the signature itself fails.
    await assert.rejects(verifyLog(author.peerId, [tampered, log[0]?.bytes ?? assert.fail()]), (err: unknown) => err instanceof LogVerificationError && err.reason === 'bad-signature' && err.seq === 1)
  })

  it("refuses another author's entry in the chain", async () => {
    const log = await buildLog(2)
    const foreign = await buildLog(2, stranger)
    await assert.rejects(verifyLog(author.peerId, headFirst(foreign)), refusedWith('wrong-author', foreign[1]?.cid ?? assert.fail(), 1))
    assert.ok(log.length === 2)
  })

  it('refuses a block that is not an entry', async () => {
    const log = await buildLog(2)
    const junk = encodeCbor({ hello: 'world' })
    await assert.rejects(verifyLog(author.peerId, [log[1]?.bytes ?? assert.fail(), junk]), refusedWith('malformed', log[0]?.cid ?? assert.fail(), 0))
  })

  it('refuses a log that stops short of genesis, or goes on below it', async () => {
    const log = await buildLog(3)
    const top = headFirst(log).slice(0, 2)
    await assert.rejects(verifyLog(author.peerId, top), (err: unknown) => err instanceof MissingEntryError && err.cid === log[0]?.cid.toString())
    const extra = [...headFirst(log), log[0]?.bytes ?? assert.fail()]
    await assert.rejects(verifyLog(author.peerId, extra), (err: unknown) => err instanceof LogVerificationError && err.reason === 'broken-chain' && /below its genesis/.test(err.message))
  })

  it('walks only what is missing when told to stop at held entries, and stores each entry only after it passed', async () => {
    const log = await buildLog(6)
    const held = new Map(log.slice(0, 3).map((block) => [block.cid.toString(), block]))
    const stored: number[] = []
    const requests: string[] = []
    const head = log.at(-1) ?? assert.fail()
    const walked = await walkLog({
      author: author.peerId,
      head: { cid: head.cid, seq: head.entry.seq },
      until: 'held',
      source: {
        local: async (cid) => held.get(cid.toString()),
        remote: async (from) => {
          requests.push(from.toString())
          const index = log.findIndex((block) => block.cid.equals(from))
          return log.slice(0, index + 1).reverse().map((block) => block.bytes)
        }
      },
      onVerified: async (block) => { stored.push(block.entry.seq) }
    })
    assert.deepEqual(walked.map((block) => block.entry.seq), [5, 4, 3])
    assert.deepEqual(stored, [5, 4, 3])
    assert.deepEqual(requests, [head.cid.toString()], 'one request answers the whole missing run')
  })
})
