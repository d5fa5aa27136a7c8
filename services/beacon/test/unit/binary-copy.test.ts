import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BinaryCopyFormatError, BinaryCopyParser, byteaLiteral } from '../../src/storage/binary-copy.ts'
import type { ByteaRow } from '../../src/storage/binary-copy.ts'

/** Binary COPY output of `rows`, as the PostgreSQL docs ("COPY", "Binary Format") lay it out. */
function encode (rows: ByteaRow[], extension = new Uint8Array(0)): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')]
  const header = Buffer.alloc(8)
  header.writeUInt32BE(extension.byteLength, 4)
  parts.push(header, Buffer.from(extension))
  for (const row of rows) {
    const count = Buffer.alloc(2)
    count.writeInt16BE(row.length)
    parts.push(count)
    for (const field of row) {
      const length = Buffer.alloc(4)
      length.writeInt32BE(field === null ? -1 : field.byteLength)
      parts.push(length)
      if (field !== null) parts.push(Buffer.from(field))
    }
  }
  parts.push(Buffer.from([0xff, 0xff]))
  return Buffer.concat(parts)
}

const rows: ByteaRow[] = [
  [new Uint8Array([1, 2, 3]), new Uint8Array(0)],
  [null, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
  [new Uint8Array(300).fill(7), new Uint8Array([0])]
]

function parse (chunks: Uint8Array[]): ByteaRow[] {
  const parser = new BinaryCopyParser()
  for (const chunk of chunks) parser.push(chunk)
  return parser.finish()
}

describe('binary COPY parser', () => {
  it('reads every row and field byte-exactly, whole or split at any byte', () => {
    const stream = encode(rows, new Uint8Array([9, 9, 9]))
    assert.deepEqual(parse([stream]), rows)
    for (let cut = 1; cut < stream.byteLength; cut++) {
      assert.deepEqual(parse([stream.subarray(0, cut), stream.subarray(cut)]), rows, `split at byte ${cut}`)
    }
    assert.deepEqual(parse([...stream].map((byte) => new Uint8Array([byte]))), rows, 'one byte at a time')
  })

  it('copies fields out of the chunk, so a reused receive buffer does not change them', () => {
    const stream = encode([[new Uint8Array([1, 2, 3, 4])]])
    const parser = new BinaryCopyParser()
    parser.push(stream)
    stream.fill(0)
    assert.deepEqual(parser.finish(), [[new Uint8Array([1, 2, 3, 4])]])
  })

  it('keeps a large field of a sealed chunk as a view of it, and copies the rest', () => {
    const block = new Uint8Array(256 * 1024).fill(5)
    const cid = new Uint8Array(36).fill(9)
    const row: ByteaRow = [cid, block]
    // As the patched pg-protocol hands a large CopyData message over: in a buffer of its own.
    const sealed = encode([row])
    const parser = new BinaryCopyParser()
    parser.push(sealed, true)
    const [[keptCid, keptBlock]] = parser.finish() as [ByteaRow]
    assert.deepEqual([keptCid, keptBlock], row)
    assert.equal(keptBlock?.buffer, sealed.buffer, 'the block is the chunk\'s own bytes, not a copy')
    assert.notEqual(keptCid?.buffer, sealed.buffer, 'a small field is copied: a view would keep the whole buffer alive')
    // The same bytes not sealed, or split across chunks: copied.
    for (const chunks of [[encode([row])], [encode([row]).subarray(0, 1000), encode([row]).subarray(1000)]]) {
      const unsealed = new BinaryCopyParser()
      for (const chunk of chunks) unsealed.push(chunk, chunks.length === 1 ? false : true)
      const [[, copied]] = unsealed.finish() as [ByteaRow]
      assert.deepEqual(copied, block)
      assert.ok(chunks.every((chunk) => copied?.buffer !== chunk.buffer), 'copied out of the chunk')
    }
  })

  it('refuses a field of negative length other than NULL\'s -1', () => {
    const stream = encode([[new Uint8Array([1])]])
    stream.writeInt32BE(-2, 19 + 2)
    assert.throws(() => parse([stream]), BinaryCopyFormatError)
  })

  it('hands over each row as soon as its last field is read, before the trailer', () => {
    const stream = encode(rows)
    const seen: Array<[ByteaRow, number]> = []
    const parser = new BinaryCopyParser((row, index) => { seen.push([row, index]) })
    // Everything up to the last byte of the first row's second (empty) field's length.
    const firstRowEnd = 19 + 2 + 4 + 3 + 4
    parser.push(stream.subarray(0, firstRowEnd - 1))
    assert.deepEqual(seen, [], 'the first row is not complete yet')
    parser.push(stream.subarray(firstRowEnd - 1, firstRowEnd))
    assert.deepEqual(seen, [[rows[0], 0]], 'the first row, before the rest of the stream')
    parser.push(stream.subarray(firstRowEnd, stream.byteLength - 2))
    assert.deepEqual(seen, rows.map((row, i) => [row, i]), 'every row, before the trailer')
    parser.push(stream.subarray(stream.byteLength - 2))
    assert.deepEqual(parser.finish(), rows)
  })

  it('refuses a stream that is not binary COPY, or that ends before its trailer', () => {
    assert.throws(() => new BinaryCopyParser().push(Buffer.from('multihash\tdata\n\\x1220\t\\x00\n')), BinaryCopyFormatError)
    const stream = encode(rows)
    const parser = new BinaryCopyParser()
    parser.push(stream.subarray(0, stream.byteLength - 2))
    assert.throws(() => parser.finish(), BinaryCopyFormatError)
  })

  it('writes bytea literals of hex digits only', () => {
    assert.equal(byteaLiteral(new Uint8Array([0, 0x27, 0x5c, 0xff])), "'\\x00275cff'::bytea")
    assert.equal(byteaLiteral(new Uint8Array(0)), "'\\x'::bytea")
  })
})
