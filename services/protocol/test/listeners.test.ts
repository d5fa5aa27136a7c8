import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Listeners } from '../src/listeners.ts'

describe('Listeners', () => {
  it('notifies every listener in the order added, until it is removed', () => {
    const heard: string[] = []
    const listeners = new Listeners<number>((err) => { throw err })
    const removeFirst = listeners.add((n) => heard.push(`first ${n}`))
    listeners.add((n) => heard.push(`second ${n}`))
    listeners.notify(1)
    removeFirst()
    listeners.notify(2)
    assert.deepEqual(heard, ['first 1', 'second 1', 'second 2'])
    assert.equal(listeners.size, 1)
  })

  it('reports a listener that throws, and still notifies the others', () => {
    const errors: unknown[] = []
    const heard: number[] = []
    const listeners = new Listeners<number>((err) => errors.push(err))
    listeners.add(() => { throw new Error('broken listener') })
    listeners.add((n) => heard.push(n))
    assert.doesNotThrow(() => { listeners.notify(7) })
    assert.deepEqual(heard, [7])
    assert.equal((errors[0] as Error).message, 'broken listener')
  })
})
