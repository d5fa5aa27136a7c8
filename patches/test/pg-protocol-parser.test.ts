/**
 * The patch to pg-protocol (patches/pg-protocol+1.16.1.patch, docs/upstream.md): a message
 * longer than the parser's buffer holds from where it starts gets a buffer of its own length
 * once, instead of one doubled up to it from the size of a socket read. Every block the
 * worker reads is one such message (a `COPY … (FORMAT binary)` row), and the stock growth
 * allocated 3.75× each 1 MiB block: garbage that made V8 collect on external memory pressure
 * while serving over Bitswap and as CAR (bench/pinning, docs/benchmarks.md). The parser is
 * fed the bytes a socket would deliver; what it parses must be what was sent, however the
 * reads cut the messages.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { Parser } from 'pg-protocol/dist/parser.js'

const KiB = 1024
const MiB = 1024 * KiB
/** What Node hands a socket's 'data' listener at most per read. */
const SOCKET_READ = 64 * KiB

/** One backend message: code, int32 length (itself included), payload. */
function message (code: number, payload: Uint8Array): Buffer {
  const bytes = Buffer.alloc(5 + payload.byteLength)
  bytes[0] = code
  bytes.writeUInt32BE(4 + payload.byteLength, 1)
  bytes.set(payload, 5)
  return bytes
}

const COPY_DATA = 0x64
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5, 0x49])

/** Parses `reads` in order; each message's name, and a CopyData's payload digest. */
function parse (reads: Buffer[]): string[] {
  const parser = new Parser()
  const seen: string[] = []
  for (const read of reads) {
    parser.parse(read, (parsed) => {
      const chunk = (parsed as { chunk?: Uint8Array }).chunk
      seen.push(chunk === undefined ? parsed.name : `${parsed.name} ${createHash('sha256').update(chunk).digest('hex')}`)
    })
  }
  return seen
}

/** `bytes` cut into reads of at most `size`. */
function reads (bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at < bytes.byteLength; at += size) out.push(Buffer.from(bytes.subarray(at, at + size)))
  return out
}

/** Bytes the parser asked Buffer.allocUnsafe for while `work` ran. */
function allocatedDuring (work: () => void): number {
  const original = Buffer.allocUnsafe
  let allocated = 0
  Buffer.allocUnsafe = (size: number) => {
    allocated += size
    return original(size)
  }
  try {
    work()
  } finally {
    Buffer.allocUnsafe = original
  }
  return allocated
}

describe('pg-protocol patch: a large message is buffered once, at its own size', () => {
  it('allocates about the message once for a 1 MiB and a 4 MiB CopyData row read 64 KiB at a time', () => {
    for (const size of [MiB, 4 * MiB]) {
      const payload = randomBytes(size)
      const stream = Buffer.concat([message(COPY_DATA, payload), READY_FOR_QUERY])
      let parsed: string[] = []
      const allocated = allocatedDuring(() => { parsed = parse(reads(stream, SOCKET_READ)) })
      assert.deepEqual(parsed, [`copyData ${createHash('sha256').update(payload).digest('hex')}`, 'readyForQuery'])
      // Stock: 3.75× a 1 MiB message, 3.94× a 4 MiB one (doubling from 64 KiB).
      assert.ok(allocated <= size + 2 * SOCKET_READ, `the parser allocated ${allocated} bytes for a ${size}-byte message`)
    }
  })

  it('parses what was sent, message for message, however the reads cut it', () => {
    let state = 7
    const next = (): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31
      return state / 2 ** 31
    }
    for (let round = 0; round < 200; round++) {
      const expected: string[] = []
      const parts: Buffer[] = []
      for (let i = 0, count = 1 + Math.floor(next() * 6); i < count; i++) {
        const r = next()
        const size = r < 0.3 ? Math.floor(next() * 40) : r < 0.7 ? Math.floor(next() * 100 * KiB) : Math.floor(next() * 3 * MiB)
        const payload = randomBytes(size)
        parts.push(message(COPY_DATA, payload))
        expected.push(`copyData ${createHash('sha256').update(payload).digest('hex')}`)
        if (next() < 0.3) {
          parts.push(READY_FOR_QUERY)
          expected.push('readyForQuery')
        }
      }
      const stream = Buffer.concat(parts)
      const cut: Buffer[] = []
      for (let at = 0; at < stream.byteLength;) {
        const step = 1 + Math.floor(next() * (next() < 0.5 ? SOCKET_READ : 300))
        cut.push(Buffer.from(stream.subarray(at, at + step)))
        at += step
      }
      assert.deepEqual(parse(cut), expected, `round ${round}`)
    }
  })

  it('marks a CopyData message in a buffer of its own `sealed`, and no later read overwrites its bytes', () => {
    let state = 11
    const next = (): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31
      return state / 2 ** 31
    }
    let sealedSeen = 0
    for (let round = 0; round < 100; round++) {
      // A large message, then small ones whose tails straddle the reads: the stock parser
      // compacts what remains to the start of its buffer, over the large message's bytes.
      const payloads = [randomBytes(MiB + Math.floor(next() * 64 * KiB))]
      for (let i = 0, count = 20 + Math.floor(next() * 200); i < count; i++) payloads.push(randomBytes(Math.floor(next() * 2 * KiB)))
      if (next() < 0.5) payloads.push(randomBytes(2 * MiB))
      for (let i = 0; i < 50; i++) payloads.push(randomBytes(Math.floor(next() * 3 * KiB)))
      const stream = Buffer.concat(payloads.map((payload) => message(COPY_DATA, payload)))
      const kept: Array<{ chunk: Uint8Array, expected: string }> = []
      const parser = new Parser()
      let index = 0
      for (let at = 0; at < stream.byteLength;) {
        const step = 1 + Math.floor(next() * SOCKET_READ)
        parser.parse(Buffer.from(stream.subarray(at, at + step)), (parsed) => {
          const { chunk, sealed } = parsed as unknown as { chunk: Uint8Array, sealed?: boolean }
          const payload = payloads[index++] as Buffer
          if (payload.byteLength >= MiB) assert.equal(sealed, true, `round ${round}: a ${payload.byteLength}-byte message is sealed`)
          if (sealed === true) kept.push({ chunk, expected: createHash('sha256').update(payload).digest('hex') })
        })
        at += step
      }
      assert.equal(index, payloads.length, `round ${round}: every message parsed`)
      sealedSeen += kept.length
      for (const { chunk, expected } of kept) assert.equal(createHash('sha256').update(chunk).digest('hex'), expected, `round ${round}: a sealed message's bytes changed after it was parsed`)
    }
    assert.ok(sealedSeen >= 100, `${sealedSeen} sealed messages checked`)
  })
})
