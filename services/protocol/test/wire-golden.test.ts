/**
 * The overlay wire format must not move when its codec does: these bytes and decode outcomes
 * were captured from the hand-written codec wire.ts had before the shared protobuf module
 * (services/protocol/src/protobuf.ts) replaced it. Every encoder output must be byte-identical,
 * and every decoder must give the same result (value, error code and detail) on a seeded corpus
 * of valid and broken frames, under the default limits and under tight ones.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import {
  createRng,
  decodeHyParView,
  decodePlumtree,
  DEFAULT_WIRE_LIMITS,
  encodeHyParView,
  encodePlumtree,
  randomInt
} from '../src/overlay/index.ts'
import type { HyParViewFrame, PlumtreeFrame, Rng, WireLimits } from '../src/overlay/index.ts'

const pattern = (length: number, seed: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff)

const hyparviewFrames: HyParViewFrame[] = [
  { topic: '/pharos/content', message: { type: 'join' } },
  { topic: '', message: { type: 'join' } },
  { topic: 't', message: { type: 'forwardJoin', peer: '12D3KooWSoeYKbpkb5UoL2T5eiomWRHdxR9cPC4tk11gKU89fFwT', ttl: 3 } },
  { topic: 't', message: { type: 'forwardJoin', peer: 'p', ttl: 0 } },
  { topic: 't', message: { type: 'forwardJoin', peer: 'p', ttl: 200 } },
  { topic: 't', message: { type: 'neighbor', priority: 'high' } },
  { topic: 't', message: { type: 'neighbor', priority: 'low' } },
  { topic: 't', message: { type: 'neighbor', priority: 'bridge' } },
  { topic: 't', message: { type: 'neighborReply', accepted: true } },
  { topic: 't', message: { type: 'neighborReply', accepted: false } },
  { topic: 't', message: { type: 'disconnect', alive: true } },
  { topic: 't', message: { type: 'disconnect', alive: false } },
  // two-, three- and four-byte UTF-8, and a lone surrogate (TextEncoder writes U+FFFD for it)
  { topic: 'žluťoučký 🐎 \uD800 end', message: { type: 'shuffle', origin: 'o', ttl: 4, peers: ['a', 'b', 'ž', '😀'] } },
  { topic: 't', message: { type: 'shuffle', origin: 'o', ttl: 0, peers: [] } },
  { topic: 't', message: { type: 'shuffle', origin: 'o'.repeat(130), ttl: 16, peers: Array.from({ length: 32 }, (_, i) => `12D3KooWpeer${i}`) } },
  { topic: 't', message: { type: 'shuffleReply', peers: ['a'] } },
  { topic: 't', message: { type: 'shuffleReply', peers: [] } }
]

const plumtreeFrames: PlumtreeFrame[] = [
  { topic: '/pharos/content', message: { type: 'gossip', id: 'bafyid', round: 7, origin: '12D3KooW', payload: new Uint8Array([0, 1, 255]) } },
  { topic: 't', message: { type: 'gossip', id: 'x', round: 0, origin: 'o', payload: new Uint8Array(0) } },
  { topic: 't', message: { type: 'gossip', id: 'x', round: 2, origin: 'o', payload: new Uint8Array(1), repaired: true } },
  { topic: 't', message: { type: 'gossip', id: 'x', round: 2, origin: 'o', payload: new Uint8Array(1), repaired: false } },
  { topic: 't', message: { type: 'gossip', id: 'bafkreid', round: 1024, origin: '12D3KooWorigin', payload: pattern(200, 1) } },
  { topic: 't', message: { type: 'gossip', id: 'big', round: 0x7fffffff, origin: 'o', payload: pattern(20_000, 2) } },
  { topic: 't', message: { type: 'ihave', entries: [{ id: 'a', round: 1 }, { id: 'b', round: 300 }, { id: 'c', round: 0 }] } },
  { topic: 't', message: { type: 'ihave', entries: [] } },
  { topic: 't', message: { type: 'ihave', entries: Array.from({ length: 40 }, (_, i) => ({ id: `bafkrei${i}`, round: i * 7 })) } },
  { topic: 't', message: { type: 'graft', id: 'a', origin: null } },
  { topic: 't', message: { type: 'graft', id: null, origin: 'o' } },
  { topic: 't', message: { type: 'graft', id: 'a', origin: 'o' } },
  { topic: 't', message: { type: 'prune', origins: ['o'] } },
  { topic: 't', message: { type: 'prune', origins: ['o', 'p', 'ünï'] } }
]

/** Short outputs as hex; long ones as their SHA-256 and length. */
function show(bytes: Uint8Array): string {
  return bytes.length > 400 ? `sha256:${createHash('sha256').update(bytes).digest('hex')}:${bytes.length}` : Buffer.from(bytes).toString('hex')
}

// Captured from the codec before the change (commit ba38566).
const GOLDEN_HYPARVIEW = [
  '0a0f2f706861726f732f636f6e74656e741200',
  '0a001200',
  '0a01741a380a34313244334b6f6f57536f65594b62706b6235556f4c32543565696f6d5752486478523963504334746b3131674b553839664677541003',
  '0a01741a030a0170',
  '0a01741a060a017010c801',
  '0a017422020801',
  '0a017422020802',
  '0a017422020803',
  '0a01742a020801',
  '0a01742a00',
  '0a017432020801',
  '0a01743200',
  '0a1ac5be6c75c5a56f75c48d6bc3bd20f09f908e20efbfbd20656e643a150a016f10041a01611a01621a02c5be1a04f09f9880',
  '0a01743a030a016f',
  'sha256:2907f1f4f70ebeb652377bae8fa5d21d8c0be6a32d14b00cd51b7de437cb01a5:643',
  '0a017442030a0161',
  '0a01744200'
]

const GOLDEN_PLUMTREE = [
  '0a0f2f706861726f732f636f6e74656e7412190a0662616679696410071a030001ff2208313244334b6f6f57',
  '0a017412060a017822016f',
  '0a0174120d0a017810021a010022016f2801',
  '0a0174120b0a017810021a010022016f',
  '0a017412e8010a086261666b726569641080081ac80101203f5e7d9cbbdaf91837567594b3d2f1102f4e6d8cabcae90827466584a3c2e1001f3e5d7c9bbad9f81736557493b2d1f00f2e4d6c8baac9e80726456483a2c1e0ff1e3d5c7b9ab9d8f71635547392b1d0ef0e2d4c6b8aa9c8e70625446382a1c0dffe1d3c5b7a99b8d7f61534537291b0cfee0d2c4b6a89a8c7e60524436281a0bfdefd1c3b5a7998b7d6f51433527190afceed0c2b4a6988a7c6e504234261809fbeddfc1b3a597897b6d5f4133251708faecdec0b2a496887a6c5e4032241607f9ebddcfb1a220e313244334b6f6f576f726967696e',
  'sha256:a52754fbe9613bbe808e06b37b4f20a9ceaa87afdeec76288f37d32629ffe42e:20025',
  '0a01741a140a050a016110010a060a016210ac020a030a0163',
  '0a01741a00',
  'sha256:e297547b51b9f2d37ea8dd2607a682d3f44973ede93ba723ccabda452c64ad2e:615',
  '0a017422030a0161',
  '0a0174220312016f',
  '0a017422060a016112016f',
  '0a01742a030a016f',
  '0a01742a0d0a016f0a01700a05c3bc6ec3af'
]

describe('wire golden bytes: the encoders write what the old codec wrote', () => {
  it('every HyParView frame', () => {
    assert.deepEqual(hyparviewFrames.map((frame) => show(encodeHyParView(frame))), GOLDEN_HYPARVIEW)
  })

  it('every Plumtree frame', () => {
    assert.deepEqual(plumtreeFrames.map((frame) => show(encodePlumtree(frame))), GOLDEN_PLUMTREE)
  })
})

/** Limits tight enough that the corpus hits every bound, so the order of the checks is pinned too. */
const TIGHT_LIMITS: WireLimits = {
  maxFrameBytes: 120,
  maxPayloadBytes: 2,
  maxPeerKeyBytes: 3,
  maxTopicBytes: 4,
  maxMessageIdBytes: 3,
  maxShufflePeers: 2,
  maxIHaveEntries: 2,
  maxPruneOrigins: 1,
  maxTtl: 2,
  maxRound: 3
}

/** One broken (or intact) variant of a valid frame. */
function mutate(rng: Rng, frames: readonly Uint8Array[]): Uint8Array {
  const base = frames[randomInt(rng, frames.length)] as Uint8Array
  const at = (bytes: Uint8Array): number => randomInt(rng, Math.max(bytes.length, 1))
  switch (randomInt(rng, 8)) {
    case 0: return base
    case 1: { // one to three random bytes
      const out = base.slice()
      for (let n = 1 + randomInt(rng, 3); n > 0 && out.length > 0; n--) out[at(out)] = randomInt(rng, 256)
      return out
    }
    case 2: return base.slice(0, randomInt(rng, base.length + 1)) // truncated
    case 3: { // a byte inserted
      const cut = randomInt(rng, base.length + 1)
      return Uint8Array.of(...base.subarray(0, cut), randomInt(rng, 256), ...base.subarray(cut))
    }
    case 4: { // a varint-breaking byte
      const out = base.slice()
      if (out.length > 0) out[at(out)] = [0x00, 0x7f, 0x80, 0xff][randomInt(rng, 4)] as number
      return out
    }
    case 5: return Uint8Array.from({ length: randomInt(rng, 48) }, () => randomInt(rng, 256))
    case 6: { // two frames spliced
      const other = frames[randomInt(rng, frames.length)] as Uint8Array
      return Uint8Array.of(...base.subarray(0, randomInt(rng, base.length + 1)), ...other.subarray(randomInt(rng, other.length + 1)))
    }
    default: { // a tag of any field number and wire type written over a byte
      const out = base.slice()
      if (out.length > 0) out[at(out)] = (randomInt(rng, 13) << 3) | randomInt(rng, 8)
      return out
    }
  }
}

/** A decode result as text, byte arrays as hex, so results can be compared by digest. */
function describeResult(result: unknown): string {
  return JSON.stringify(result, (_key, value: unknown) => value instanceof Uint8Array ? `0x${Buffer.from(value).toString('hex')}` : value)
}

describe('wire golden decoding: the decoders answer what the old codec answered', () => {
  it('the same value, error code and detail for every frame of a seeded corpus', () => {
    const frames = [
      ...hyparviewFrames.map((frame) => encodeHyParView(frame)),
      ...plumtreeFrames.filter((frame) => frame.message.type !== 'gossip' || frame.message.payload.length < 1000).map((frame) => encodePlumtree(frame))
    ]
    const rng = createRng(0x22c0dec)
    const digest = createHash('sha256')
    const outcomes = new Map<string, number>()
    for (let i = 0; i < 12_000; i++) {
      const input = mutate(rng, frames)
      for (const limits of [DEFAULT_WIRE_LIMITS, TIGHT_LIMITS]) {
        for (const result of [decodeHyParView(input, limits), decodePlumtree(input, limits)]) {
          digest.update(describeResult(result)).update('\n')
          const outcome = result.ok ? 'ok' : result.code
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
        }
      }
    }
    // Every outcome is reached often, so the digest covers each error path.
    for (const outcome of ['ok', 'malformed', 'oversized', 'too-many', 'unknown-field', 'missing-field']) {
      assert.ok((outcomes.get(outcome) ?? 0) >= 100, `${outcome}: ${outcomes.get(outcome) ?? 0} results in ${JSON.stringify([...outcomes])}`)
    }
    assert.equal(digest.digest('hex'), '4a10b5420c2dd2d9a2cd9b24cc1ff05062ac1f7aa61bbfd4e0d5019cb6d760d0')
  })
})
