/**
 * The patch to @libp2p/utils' `lpStream` (patches/@libp2p+utils+7.4.1.patch,
 * docs/upstream.md, report 3): its `read` took a length prefix one byte at a time and asked
 * the length decoder after each byte, catching the RangeError a partial prefix throws. For
 * Noise's 2-byte length that is an exception (and a stack trace) per handshake message; for a
 * varint prefix that never ends it read on without bound. Real streams (@libp2p/utils'
 * streamPair), the peer sending the prefix a byte per message as a slow link would.
 */
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import type { Stream } from '@libp2p/interface'
import { lpStream, streamPair } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Noise's framing (@libp2p/noise's uint16BEDecode): a fixed 2-byte big-endian length, counting partial tries. */
function countingUint16Decoder (): { decode: ((data: Uint8ArrayList) => number) & { bytes: number }, partialTries: () => number } {
  let partialTries = 0
  const decode = Object.assign((data: Uint8ArrayList): number => {
    if (data.byteLength < 2) {
      partialTries++
      throw new RangeError('Could not decode int16BE')
    }
    return data.getUint16(0)
  }, { bytes: 2 })
  return { decode, partialTries: () => partialTries }
}

/** Sends each byte as its own message, so the reader sees the prefix arrive piece by piece. */
function sendBytewise (stream: Stream, bytes: Uint8Array): void {
  for (const byte of bytes) stream.send(Uint8Array.of(byte))
}

describe('@libp2p/utils lpStream patch: length prefixes', () => {
  const streams: Stream[] = []
  afterEach(() => {
    for (const stream of streams.splice(0)) stream.abort(new Error('test over'))
  })

  it('reads a fixed-width length whole: no partial decode (no exception) per message', async () => {
    const [outbound, inbound] = await streamPair()
    streams.push(outbound, inbound)
    const { decode, partialTries } = countingUint16Decoder()
    const reader = lpStream(inbound, { lengthDecoder: decode, lengthEncoder: Object.assign((n: number) => Uint8Array.of(n >> 8, n & 0xff), { bytes: 2 }) })
    const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(300).fill(7), new Uint8Array([9])]
    for (const payload of payloads) sendBytewise(outbound, Uint8Array.of(payload.byteLength >> 8, payload.byteLength & 0xff, ...payload))
    for (const payload of payloads) assert.deepEqual((await reader.read()).subarray(), payload)
    assert.equal(partialTries(), 0, 'stock: the decoder is tried on the first byte of every prefix, and throws')
  })

  it('decodes varint prefixes of one, two and three bytes arriving a byte at a time', async () => {
    const [outbound, inbound] = await streamPair()
    streams.push(outbound, inbound)
    const reader = lpStream(inbound)
    const writer = lpStream(outbound)
    const payloads = [new Uint8Array([5]), new Uint8Array(200).fill(1), new Uint8Array(20_000).fill(2)]
    // the writer frames them (1-, 2- and 3-byte varints); resend its output byte by byte
    const framed: Uint8Array[] = []
    const send = outbound.send.bind(outbound)
    outbound.send = (data) => { framed.push(data.subarray()); return true }
    for (const payload of payloads) await writer.write(payload)
    outbound.send = send
    for (const chunk of framed) sendBytewise(outbound, chunk)
    for (const payload of payloads) assert.deepEqual((await reader.read()).subarray(), payload)
  })

  it('refuses a varint prefix longer than the longest allowed as soon as it is, not at the end of the stream', async () => {
    const [outbound, inbound] = await streamPair()
    streams.push(outbound, inbound)
    const reader = lpStream(inbound, { maxDataLength: 1024 })
    // 1024 takes a 2-byte varint; these continuation bytes never end a prefix
    sendBytewise(outbound, new Uint8Array(64).fill(0x80))
    await outbound.close()
    await assert.rejects(reader.read(), { name: 'InvalidDataLengthLengthError' },
      'stock: reads every byte and fails with UnexpectedEOFError when the stream ends (or never, while it stays open)')
  })

  it('refuses a varint prefix that can never decode even without a maximum length', async () => {
    const [outbound, inbound] = await streamPair()
    streams.push(outbound, inbound)
    const reader = lpStream(inbound)
    sendBytewise(outbound, new Uint8Array(64).fill(0xff))
    await outbound.close()
    await assert.rejects(reader.read(), { name: 'InvalidDataLengthLengthError' })
  })
})
