/**
 * Light connections spread over child processes (light-child.ts): the swarm generator and
 * the connections benchmark both open and hold them through this.
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { LightCommand, LightReply, LightSpec } from './protocol.ts'

export function forkChild (file: string, env: Record<string, string> = {}): ChildProcess {
  return fork(fileURLToPath(new URL(file, import.meta.url)), {
    execPath: process.execPath,
    execArgv: ['--disable-warning=ExperimentalWarning', '--max-old-space-size=8192'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
}

export async function ready (child: ChildProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onMessage = (message: { type: string }): void => { if (message.type === 'ready') { child.off('message', onMessage); resolve() } }
    child.on('message', onMessage)
    child.once('exit', (code) => { reject(new Error(`child exited with ${code} before it was ready`)) })
  })
}

/**
 * The i-th light connection's source: 127.1.0.1 onwards, 250 per /24 (so none ends in .0 or
 * .255), one address per connection, which keeps every source under a per-IP rate limit.
 */
export function sourceAddress (index: number): string {
  return `127.${1 + Math.floor(index / 64_000)}.${Math.floor(index / 250) % 256}.${1 + (index % 250)}`
}

export interface LightPoolEvents {
  onOpened?: (id: number, ms: number) => void
  onFailed?: (id: number, reason: string, message: string) => void
  onClosedByRemote?: (id: number) => void
}

export class LightPool {
  readonly children: ChildProcess[]
  /** Connections open now, by id. */
  readonly open = new Set<number>()
  private readonly events: LightPoolEvents
  private readonly batchesDone: Array<Array<() => void>>
  private readonly statusWaiters: Array<Array<(reply: Extract<LightReply, { type: 'status' }>) => void>>
  private nextId = 0

  constructor (processes: number, events: LightPoolEvents = {}) {
    this.events = events
    this.children = Array.from({ length: processes }, () => forkChild('./light-child.ts'))
    this.batchesDone = this.children.map(() => [])
    this.statusWaiters = this.children.map(() => [])
    this.children.forEach((child, k) => {
      child.on('message', (message: LightReply) => {
        switch (message.type) {
          case 'opened': this.open.add(message.id); this.events.onOpened?.(message.id, message.ms); break
          case 'open-failed': this.events.onFailed?.(message.id, message.reason, message.message); break
          case 'closed-by-remote': this.open.delete(message.id); this.events.onClosedByRemote?.(message.id); break
          case 'batch-done': this.batchesDone[k]?.shift()?.(); break
          case 'status': this.statusWaiters[k]?.shift()?.(message); break
          case 'ready': break
        }
      })
    })
  }

  async ready (): Promise<void> {
    await Promise.all(this.children.map(ready))
  }

  /** Specs for `count` new connections, each from a fresh source, over `targets` in turn. */
  specs (count: number, targets: readonly string[]): LightSpec[] {
    return Array.from({ length: count }, () => {
      const id = this.nextId++
      return { id, target: targets[id % targets.length] ?? '', source: sourceAddress(id) }
    })
  }

  /** Opens `specs`, `concurrency` in flight per child; resolves when every one has opened or failed. */
  async openAll (specs: readonly LightSpec[], concurrency: number): Promise<void> {
    const byChild = this.children.map(() => [] as LightSpec[])
    for (const spec of specs) byChild[spec.id % this.children.length]?.push(spec)
    await Promise.all(byChild.map(async (childSpecs, k) => {
      if (childSpecs.length === 0) return
      const done = new Promise<void>((resolve) => { this.batchesDone[k]?.push(resolve) })
      this.send(k, { type: 'open', specs: childSpecs, concurrency })
      await done
    }))
  }

  close (ids: readonly number[]): void {
    this.children.forEach((_, k) => { this.send(k, { type: 'close', ids: ids.filter((id) => id % this.children.length === k) }) })
    for (const id of ids) this.open.delete(id)
  }

  /** Connections held and RSS, summed over the children. */
  async status (): Promise<{ held: number, rssBytes: number }> {
    const replies = await Promise.all(this.children.map(async (_, k) => {
      const reply = new Promise<Extract<LightReply, { type: 'status' }>>((resolve) => { this.statusWaiters[k]?.push(resolve) })
      this.send(k, { type: 'status' })
      return await reply
    }))
    return { held: replies.reduce((sum, reply) => sum + reply.held, 0), rssBytes: replies.reduce((sum, reply) => sum + reply.rssBytes, 0) }
  }

  async stop (): Promise<void> {
    await stopChildren(this.children, (k) => { this.send(k, { type: 'stop' }) })
  }

  private send (k: number, command: LightCommand): void {
    this.children[k]?.send(command)
  }
}

/** Asks each child to stop, and kills one that has not exited 30 s later. */
export async function stopChildren (children: readonly ChildProcess[], askToStop: (k: number) => void): Promise<void> {
  await Promise.all(children.map(async (child, k) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => { child.once('exit', resolve) })
    askToStop(k)
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
    await exited
    clearTimeout(timer)
  }))
}
