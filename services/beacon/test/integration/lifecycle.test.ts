/**
 * A worker's parts start in one written-down order and stop in its reverse (lifecycle.ts),
 * a start that fails half-way stops exactly what came up, and the worker reports the order
 * it used.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { loadConfig } from '../../src/config/load.ts'
import { Lifecycle } from '../../src/lifecycle.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

/** A lifecycle that writes what happens to `events`. */
function recording (): { lifecycle: Lifecycle, events: string[], stopErrors: string[] } {
  const events: string[] = []
  const stopErrors: string[] = []
  const lifecycle = new Lifecycle((part) => { stopErrors.push(part) })
  return { lifecycle, events, stopErrors }
}

describe('Lifecycle', () => {
  it('brings parts up in the order they are added and stops them in the reverse', async () => {
    const { lifecycle, events } = recording()
    lifecycle.held('lock', () => { events.push('stop lock') })
    lifecycle.add({ name: 'http', start: async () => { events.push('start http') }, stop: async () => { events.push('stop http') } })
    lifecycle.add({ name: 'libp2p', start: async () => { events.push('start libp2p') }, stop: async () => { events.push('stop libp2p') } })
    await lifecycle.startAll()
    lifecycle.held('timer', () => { events.push('stop timer') })
    assert.deepEqual(lifecycle.order(), ['lock', 'http', 'libp2p', 'timer'])
    await lifecycle.stopAll()
    assert.deepEqual(events, ['start http', 'start libp2p', 'stop timer', 'stop libp2p', 'stop http', 'stop lock'])
    await lifecycle.stopAll()
    assert.equal(events.length, 6, 'a second stop stops nothing again')
  })

  it('stops the part whose start failed and what came up before it, and never starts the rest', async () => {
    const { lifecycle, events } = recording()
    lifecycle.add({ name: 'http', start: async () => { events.push('start http') }, stop: async () => { events.push('stop http') } })
    lifecycle.add({ name: 'libp2p', start: async () => { throw new Error('port in use') }, stop: async () => { events.push('stop libp2p') } })
    lifecycle.add({ name: 'storage', start: async () => { events.push('start storage') }, stop: async () => { events.push('stop storage') } })
    await assert.rejects(lifecycle.startAll(), /port in use/)
    await lifecycle.stopAll()
    assert.deepEqual(events, ['start http', 'stop libp2p', 'stop http'])
  })

  it('goes on stopping the others when one part fails to stop, and says which', async () => {
    const { lifecycle, events, stopErrors } = recording()
    lifecycle.held('database', () => { events.push('stop database') })
    lifecycle.held('fleet state', () => { throw new Error('redis gone') })
    lifecycle.held('timer', () => { events.push('stop timer') })
    await lifecycle.stopAll()
    assert.deepEqual(events, ['stop timer', 'stop database'])
    assert.deepEqual(stopErrors, ['fleet state'])
  })
})

describe('a worker\'s parts', () => {
  it('come up in the documented order: what holds state first, HTTP before libp2p, and the services on libp2p last', async () => {
    const worker = await startWorker(loadConfig(await inProcessEnv()), createLogger('silent'))
    try {
      assert.deepEqual(worker.parts, [
        'data-dir lock',
        'inbound admission',
        'event-loop sampler',
        'descriptor watch',
        'database',
        'accounts refresh',
        'ban list',
        'registry journal',
        'fleet state',
        'pressure monitor',
        'http',
        'libp2p',
        'storage',
        'audits',
        'log service',
        'registry',
        'readiness sampler',
        'fleet membership refresh',
        'content key re-sealing'
      ])
    } finally {
      await worker.stop()
    }
  })
})
