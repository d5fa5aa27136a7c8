import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

// A full collection on demand, without starting the test runner with --expose-gc.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * Bytes the process still holds after a full collection: the JS heap plus the array buffers
 * (block bytes, frames) outside it. Unlike RSS it does not count memory the allocator has not
 * given back yet, so a bound on its growth is a bound on what the code under test kept.
 */
export function retainedBytes (): number {
  gc()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}
