/**
 * Inbound admission on a real worker, with real sockets from distinct 127.x source
 * addresses (all of 127/8 is loopback) and real js-libp2p peers: half-open connections
 * that trickle or go silent are closed early, many sources holding pending slots do not
 * keep an honest peer out, the heaviest source loses a slot first, a returning member gets
 * in through a strangers' handshake flood, and every refusal is counted by its reason. The bookkeeping itself: inbound-admission.test.ts.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import type { Socket } from 'node:net'
import { after, describe, it } from 'node:test'
import type { Multiaddr } from '@multiformats/multiaddr'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const WAIT_MS = 30_000
/** The start of an honest initiator's first multistream-select message ("/multistream/1.0.0\n", length-prefixed). */
const HEADER = Uint8Array.of(19, ...new TextEncoder().encode('/multistream/1.0.0\n'))

/** Starts a worker and adds it to `started` (which the suite stops). */
async function startTestWorker (started: Worker[], env: Record<string, string>): Promise<{ worker: Worker, addr: Multiaddr, port: number }> {
  const worker = await startWorker(loadConfig(await inProcessEnv({ PHAROS_ADMIN_TOKENS: 'a'.repeat(32), ...env })), createLogger('silent'))
  started.push(worker)
  const addr = worker.node.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/tcp/') && !a.toString().includes('/ws')) ?? assert.fail('no TCP address')
  const port = Number(addr.getComponents().find((component) => component.name === 'tcp')?.value)
  return { worker, addr, port }
}

async function metric (worker: Worker, name: string, labels = ''): Promise<number> {
  const text = (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? ' ' : `{${labels}} `}`))
  return line === undefined ? 0 : Number(line.split(' ').at(-1))
}

/**
 * V8's own answer to whether `object` keeps fast (shape-based) properties or has become a
 * dictionary: `%HasFastProperties`, compiled once with natives syntax switched on for it.
 */
const hasFastProperties = ((): (object: object) => boolean => {
  setFlagsFromString('--allow-natives-syntax')
  // Natives syntax exists only in code compiled after the flag is set: hence a Function.
  const check = new Function('object', 'return %HasFastProperties(object)') as (object: object) => boolean
  setFlagsFromString('--no-allow-natives-syntax')
  return check
})()

const refused = async (worker: Worker, reason: string): Promise<number> => await metric(worker, 'pharos_connections_refused_total', `reason="${reason}"`)
const pending = async (worker: Worker): Promise<number> => await metric(worker, 'pharos_inbound_upgrades_pending')

/** A raw TCP connection from `source`, that the test writes to (or not); `closed` settles when the worker drops it. */
interface RawConnection { socket: Socket, closed: Promise<void>, isClosed: () => boolean }

async function open (port: number, source: string, first: Uint8Array = HEADER.subarray(0, 6)): Promise<RawConnection> {
  const socket = connect({ host: '127.0.0.1', port, localAddress: source })
  let isClosed = false
  const closed = new Promise<void>((resolve) => { socket.once('close', () => { isClosed = true; resolve() }) })
  // A connection the worker refuses at once may be reset before it is even reported as connected.
  socket.on('error', () => {})
  await new Promise<void>((resolve) => {
    socket.once('connect', () => {
      if (first.length > 0) socket.write(first)
      resolve()
    })
    socket.once('close', () => { resolve() })
  })
  return { socket, closed, isClosed: () => isClosed }
}

describe('inbound admission', () => {
  const workers: Worker[] = []
  const sockets: Socket[] = []
  const peers: ClientPeer[] = []
  after(async () => {
    for (const socket of sockets) socket.destroy()
    await Promise.all(peers.map(async (peer) => { await peer.stop() }))
    await Promise.all(workers.map(async (worker) => { await worker.stop() }))
  })
  const raw = async (port: number, source: string, first?: Uint8Array): Promise<RawConnection> => {
    const connection = await open(port, source, first)
    sockets.push(connection.socket)
    return connection
  }

  it('closes a peer that trickles its handshake, or goes silent, long before the overall upgrade timeout; the pending gauge returns to 0', async () => {
    // The overall timeout is a minute: only the progress rules can close these in time.
    const { worker, port } = await startTestWorker(workers, {
      PHAROS_INBOUND_UPGRADE_TIMEOUT_MS: '60000',
      PHAROS_UPGRADE_FIRST_MESSAGE_TIMEOUT_MS: '500',
      PHAROS_UPGRADE_MIN_BYTES_PER_SECOND: '64'
    })
    // Half a header, then nothing: its first message never completes.
    const silent = await raw(port, '127.0.1.1')
    // A whole first message at once, then a byte every 100 ms: 10 bytes/s, under 64.
    const trickler = await raw(port, '127.0.1.2', HEADER)
    const drip = setInterval(() => { if (!trickler.isClosed()) trickler.socket.write(Uint8Array.of(0x2f)) }, 100)
    try {
      await waitFor('both connections mid-upgrade', async () => await pending(worker) === 2, WAIT_MS)
      await Promise.race([
        Promise.all([silent.closed, trickler.closed]),
        new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('not closed within 30 s: the overall timeout is 60 s')) }, WAIT_MS))
      ])
    } finally {
      clearInterval(drip)
    }
    await waitFor('both counted as slow upgrades', async () => await refused(worker, 'slow-upgrade') === 2, WAIT_MS)
    assert.equal(await metric(worker, 'pharos_limit_blocked_total', 'limit="PHAROS_UPGRADE_FIRST_MESSAGE_TIMEOUT_MS"'), 1, 'the silent one')
    assert.equal(await metric(worker, 'pharos_limit_blocked_total', 'limit="PHAROS_UPGRADE_MIN_BYTES_PER_SECOND"'), 1, 'the trickler')
    await waitFor('no connection left mid-upgrade', async () => await pending(worker) === 0, WAIT_MS)
  })

  it('many sources holding every pending slot do not keep an honest peer out', async () => {
    const { worker, addr, port } = await startTestWorker(workers, {
      PHAROS_MAX_INCOMING_PENDING_CONNECTIONS: '16',
      PHAROS_PENDING_UPGRADES_PER_PREFIX: '8',
      PHAROS_PENDING_UPGRADES_PER_SOURCE: '2',
      // Nothing closes the attackers but admission's fairness: no progress rule, no timeout.
      PHAROS_INBOUND_UPGRADE_TIMEOUT_MS: '600000',
      PHAROS_UPGRADE_FIRST_MESSAGE_TIMEOUT_MS: '600000',
      PHAROS_UPGRADE_MIN_BYTES_PER_SECOND: '0'
    })
    // 32 silent connections from 16 sources in four /24s, each reopened when it is closed,
    // as the attacker did; the worker holds 16 of them at a time.
    let attacking = true
    const attackers: Array<Promise<void>> = []
    for (let network = 1; network <= 4; network++) {
      for (let host = 1; host <= 4; host++) {
        for (let copy = 0; copy < 2; copy++) {
          attackers.push((async () => {
            for (let round = 0; attacking && round < 50; round++) {
              const connection = await raw(port, `127.0.${10 + network}.${host}`).catch(() => undefined)
              await connection?.closed
              await new Promise((resolve) => setTimeout(resolve, 20))
            }
          })())
        }
      }
    }
    try {
      await waitFor('the attackers hold every slot', async () => await pending(worker) === 16, WAIT_MS)
      // The honest peer (127.0.0.1, a network that holds nothing) gets in within a few dials.
      const honest = await createClientPeer()
      peers.push(honest)
      await honest.start()
      let failures = 0
      for (;;) {
        try {
          await honest.dial(addr, { signal: AbortSignal.timeout(WAIT_MS) })
          break
        } catch (err) {
          failures++
          if (failures >= 3) throw new Error(`the honest peer failed ${failures} dials in a row`, { cause: err })
        }
      }
      assert.ok(honest.getConnections(worker.node.peerId).length > 0)
      assert.ok(await refused(worker, 'evicted') >= 1, 'an attacker lost its slot to the honest peer')
    } finally {
      attacking = false
      for (const socket of sockets) socket.destroy()
      await Promise.all(attackers)
    }
  })

  it('takes the slot of the heaviest source first, and counts each refusal by its reason', async () => {
    const { worker, port } = await startTestWorker(workers, {
      PHAROS_MAX_INCOMING_PENDING_CONNECTIONS: '4',
      PHAROS_PENDING_UPGRADES_PER_PREFIX: '4',
      PHAROS_PENDING_UPGRADES_PER_SOURCE: '3',
      PHAROS_INBOUND_UPGRADE_TIMEOUT_MS: '600000',
      PHAROS_UPGRADE_FIRST_MESSAGE_TIMEOUT_MS: '600000',
      PHAROS_UPGRADE_MIN_BYTES_PER_SECOND: '0'
    })
    const held = async (n: number): Promise<void> => { await waitFor(`${n} mid-upgrade`, async () => await pending(worker) === n, WAIT_MS) }
    // Source a (127.0.21.1) holds three slots, source b (127.0.22.1) one: every slot is held.
    const a = [await raw(port, '127.0.21.1'), await raw(port, '127.0.21.1'), await raw(port, '127.0.21.1')]
    await held(3)
    const b = await raw(port, '127.0.22.1')
    await held(4)
    // A fourth from a: over its own share (source-cap).
    const overShare = await raw(port, '127.0.21.1')
    await overShare.closed
    // Source c, in a network holding nothing, takes the oldest slot of a, the heaviest.
    await raw(port, '127.0.23.1')
    await a[0]?.closed
    await held(4)
    assert.deepEqual(a.map((connection) => connection.isClosed()), [true, false, false], 'a lost its oldest')
    assert.equal(b.isClosed(), false, 'b, holding one, kept it')
    // Source b2: a's network still holds two, b2's one; the lighter network takes one of a's.
    await raw(port, '127.0.22.2')
    await a[1]?.closed
    await held(4)
    assert.equal(b.isClosed(), false)
    // Now b's network is the heaviest (b and b2, one each): b again would only take a slot
    // from a source as heavy as itself, so it is refused (pending-cap).
    const asHeavy = await raw(port, '127.0.22.1')
    await asHeavy.closed
    assert.equal(b.isClosed(), false, 'b\'s own slot is untouched')
    assert.equal(await refused(worker, 'source-cap'), 1)
    assert.equal(await refused(worker, 'evicted'), 2)
    assert.equal(await refused(worker, 'pending-cap'), 1)
    assert.equal(await metric(worker, 'pharos_limit_blocked_total', 'limit="PHAROS_PENDING_UPGRADES_PER_SOURCE"'), 1)
    assert.equal(await metric(worker, 'pharos_limit_blocked_total', 'limit="PHAROS_MAX_INCOMING_PENDING_CONNECTIONS"'), 3, 'two evictions and a refusal at the global cap')
  })

  it('sheds new handshakes while the event loop lags, and admits them again once it keeps up', async () => {
    // A target well above what a loaded test machine's own scheduling adds (a 2-core machine
    // at load 15 delays a 10 ms timer by tens of ms), and holds well above the target: the
    // lag that sheds is the one this test makes.
    const { worker, addr, port } = await startTestWorker(workers, {
      PHAROS_HANDSHAKE_LOOP_DELAY_TARGET_MS: '150',
      PHAROS_MAX_HANDSHAKES_PER_SECOND: '300',
      PHAROS_MIN_HANDSHAKES_PER_SECOND: '1'
    })
    const rate = async (): Promise<number> => await metric(worker, 'pharos_inbound_handshake_rate')
    // Starting the worker held this loop too: the rate may start lower, and grows back.
    await waitFor('the rate up while the loop keeps up', async () => await rate() >= 150, WAIT_MS)
    // The worker runs in this process: hold its loop for 250 ms of every 300, as a flood would.
    const busy = setInterval(() => { const until = performance.now() + 250; while (performance.now() < until); }, 300)
    try {
      await waitFor('the admitted rate at its floor', async () => await rate() <= 2, WAIT_MS)
      const connections = await Promise.all(Array.from({ length: 10 }, async (_, i) => await raw(port, `127.0.41.${i + 1}`, HEADER)))
      await waitFor('most of ten at once shed', async () => await refused(worker, 'overload') >= 8, WAIT_MS)
      for (const connection of connections) connection.socket.destroy()
    } finally {
      clearInterval(busy)
    }
    await waitFor('the rate grown back once the loop keeps up', async () => await rate() >= 150, WAIT_MS)
    const peer = await createClientPeer()
    peers.push(peer)
    await peer.start()
    await peer.dial(addr, { signal: AbortSignal.timeout(WAIT_MS) })
  })

  it('leaves nothing of itself on an admitted connection: the transport connection keeps fast properties (memory per connection held)', async () => {
    const { worker, addr } = await startTestWorker(workers, {})
    const peer = await createClientPeer()
    peers.push(peer)
    await peer.start()
    await peer.dial(addr, { signal: AbortSignal.timeout(WAIT_MS) })
    await waitFor('the worker holds the connection', async () => worker.node.getConnections(peer.peerId).some((connection) => connection.status === 'open'), WAIT_MS)
    const [connection] = worker.node.getConnections(peer.peerId)
    // libp2p's Connection keeps its transport connection (the object admission counted the
    // bytes of) as `maConn`; a dictionary-mode one costs about 1.6 KiB more, per connection.
    const maConn = (connection as unknown as { maConn?: { onData?: unknown } }).maConn ?? assert.fail('no maConn on the worker\'s connection')
    assert.equal(maConn.onData, Object.getPrototypeOf(maConn).onData, 'the transport\'s own onData again, not the admission\'s counter')
    assert.equal(hasFastProperties(maConn), true, 'the transport connection became a dictionary')
  })

  it('refuses a source past its connection rate (rate-limit), sheds handshakes past the admitted rate (overload), and refuses non-members past their share of connections (not-registered)', async () => {
    const { worker, addr, port } = await startTestWorker(workers, {
      PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND: '1',
      PHAROS_MAX_HANDSHAKES_PER_SECOND: '1',
      PHAROS_MIN_HANDSHAKES_PER_SECOND: '1',
      PHAROS_MAX_NON_MEMBER_CONNECTIONS: '1'
    })
    // One source, three connections at once, one a second allowed: the others are refused.
    const fromOne = await Promise.all([1, 2, 3].map(async () => await raw(port, '127.0.32.1', HEADER)))
    // Three sources at once, one handshake a second admitted (one token banked): the rest are shed.
    const fromThree = await Promise.all([1, 2, 3].map(async (host) => await raw(port, `127.0.31.${host}`, HEADER)))
    await waitFor('the refusals counted', async () => await refused(worker, 'rate-limit') >= 1 && await refused(worker, 'overload') >= 1, WAIT_MS)
    assert.ok(fromOne.some((connection) => connection.isClosed()) && fromThree.some((connection) => connection.isClosed()))
    for (const connection of [...fromOne, ...fromThree]) connection.socket.destroy()
    assert.equal(await metric(worker, 'pharos_limit_blocked_total', 'limit="PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND"'), await refused(worker, 'rate-limit'))
    assert.equal(await metric(worker, 'pharos_limit_blocked_total', 'limit="PHAROS_MAX_HANDSHAKES_PER_SECOND"'), await refused(worker, 'overload'), 'shed at the ceiling, with no lag to blame (loop shedding is off here)')

    // Two peers that are not accounts: the first takes the one place non-members have, the
    // second is refused once Noise names it; a member still gets in.
    const member = await createClientPeer()
    const outsiders = [await createClientPeer(), await createClientPeer()]
    peers.push(member, ...outsiders)
    await worker.accounts.add(member.peerId.toString(), 'member')
    // One handshake and one connection per source a second: a dial may be shed or
    // rate-limited, so each is retried (a bounded number of times) until `done`.
    const dialUntil = async (peer: ClientPeer, done: () => Promise<boolean>): Promise<void> => {
      await peer.start()
      for (let attempt = 1; !await done(); attempt++) {
        if (attempt > 20) assert.fail(`${attempt - 1} dials and still not done`)
        await peer.dial(addr, { signal: AbortSignal.timeout(WAIT_MS) }).catch(() => {})
        if (!await done()) await new Promise((resolve) => setTimeout(resolve, 1100))
      }
    }
    const [first, second] = outsiders as [ClientPeer, ClientPeer]
    // The worker's end of a connection is up once its own upgrade is done (the dialler's may be sooner).
    const held = (peer: ClientPeer) => async () => worker.node.getConnections(peer.peerId).some((connection) => connection.status === 'open')
    await dialUntil(first, held(first))
    await dialUntil(second, async () => await refused(worker, 'not-registered') >= 1)
    await waitFor('the second outsider holds nothing', async () => !await held(second)(), WAIT_MS)
    assert.equal(await held(first)(), true, 'the first keeps its place')
    await dialUntil(member, held(member))
  })

  it('lets a member back in from the address it connected from while strangers\' handshakes take every common token', async () => {
    const { worker, addr, port } = await startTestWorker(workers, {
      PHAROS_MAX_HANDSHAKES_PER_SECOND: '1',
      PHAROS_MIN_HANDSHAKES_PER_SECOND: '1'
    })
    const member = await createClientPeer()
    peers.push(member)
    await worker.accounts.add(member.peerId.toString(), 'member')
    await member.start()
    const held = async (): Promise<boolean> => worker.node.getConnections(member.peerId).some((connection) => connection.status === 'open')
    // Its first connection (from 127.0.0.1) may have to wait for a token like anyone's.
    for (let attempt = 1; !await held(); attempt++) {
      if (attempt > 10) assert.fail('the member never got its first connection')
      await member.dial(addr, { signal: AbortSignal.timeout(WAIT_MS) }).catch(async () => { await new Promise((resolve) => setTimeout(resolve, 1100)) })
      await waitFor('the worker\'s end up, or the dial lost', async () => await held() || member.getConnections(worker.node.peerId).length === 0, WAIT_MS)
    }
    await waitFor('the member\'s source remembered', async () => worker.admission.isMemberSource('127.0.0.1'), WAIT_MS)
    await member.hangUp(worker.node.peerId)
    await waitFor('the member gone', async () => !await held(), WAIT_MS)

    // Strangers from 200 other addresses open a connection every 20 ms: at one handshake a
    // second, every common token is gone the moment it refills.
    let flooded = 0
    const flood = setInterval(() => {
      flooded++
      raw(port, `127.0.51.${(flooded % 200) + 1}`, HEADER).then((connection) => { setTimeout(() => { connection.socket.destroy() }, 500) }, () => {})
    }, 20)
    try {
      await waitFor('strangers shed', async () => await refused(worker, 'overload') >= 20, WAIT_MS)
      // Three returns in a row, each after its lane's token refilled (1 s at 1/s): stock, each
      // would win a token against 50 strangers a second about one time in fifty.
      for (let turn = 1; turn <= 3; turn++) {
        await new Promise((resolve) => setTimeout(resolve, 1100))
        const shedBefore = await refused(worker, 'overload')
        await member.dial(addr, { signal: AbortSignal.timeout(WAIT_MS) })
        await waitFor(`return ${turn}: the worker's end up`, held, WAIT_MS)
        assert.ok(await refused(worker, 'overload') > shedBefore, 'strangers were being shed meanwhile')
        await member.hangUp(worker.node.peerId)
        await waitFor('the member gone', async () => !await held(), WAIT_MS)
      }
    } finally {
      clearInterval(flood)
    }
  })
})
