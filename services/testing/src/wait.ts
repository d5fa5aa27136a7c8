/** Waiting in tests: one poll loop for every test file, so each fails the same clear way. */
import assert from 'node:assert/strict'

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Polls `condition` every 50 ms until it holds; fails naming `what` (and what `explain`
 * says, if given) after `timeoutMs`. A condition that throws fails the wait at once.
 */
export async function waitFor (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, explain?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await condition()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${explain === undefined ? '' : `: ${explain()}`}`)
    await sleep(50)
  }
}

/**
 * Polls `check` until it returns a value (not undefined or false) and returns it; a check
 * that throws counts as "not yet". Fails naming `what` after `timeoutMs`.
 */
export async function waitForValue<T> (what: string, timeoutMs: number, check: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check().catch(() => undefined)
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(250)
  }
}
