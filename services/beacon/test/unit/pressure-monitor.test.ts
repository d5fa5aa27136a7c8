/**
 * The HTTP pressure monitor (http/pressure-monitor.ts) with every file descriptor in use: the
 * RSS is read from /proc/self/statm, and with no descriptor left Node's `process.memoryUsage()`
 * throws EMFILE. In a 20,000-connection run that killed the worker from the monitor's timer.
 * Here the process's memory readers throw as they do then.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PRESSURE_WINDOW_MS, PressureMonitor } from '../../src/http/pressure-monitor.ts'
import { sleep } from '@pharos/testing/wait.ts'

/** Node's error for a /proc read with no file descriptor left. */
function emfile (): Error {
  return Object.assign(new Error('EMFILE: too many open files, uv_resident_set_memory'), { code: 'EMFILE', errno: -24, syscall: 'uv_resident_set_memory' })
}

describe('pressure monitor', () => {
  it('keeps running, on the heap figure and its last RSS, while reading the RSS fails with EMFILE', async () => {
    const memoryUsage = process.memoryUsage
    const failing = Object.assign(() => { throw emfile() }, { rss: () => { throw emfile() } }) as unknown as typeof process.memoryUsage
    // A heap limit of one byte: over it from the first reading, so the figure is seen to be read.
    const monitor = new PressureMonitor({ maxEventLoopDelayMs: 0, maxHeapUsedBytes: 1, maxRssBytes: 0 })
    process.memoryUsage = failing
    try {
      monitor.start()
      // Two windows close, each reading memory again; a throw there is an uncaught
      // exception from a timer, which fails this test (and, in the worker, ended it).
      await sleep(2 * PRESSURE_WINDOW_MS + 200)
      assert.equal(monitor.overload()?.signal, 'heap-used')
    } finally {
      monitor.stop()
      process.memoryUsage = memoryUsage
    }
  })
})
