/**
 * The bridge from libp2p's component loggers to pino: scoped loggers carry their scope when
 * libp2p's lines are emitted, and cost no pino child at the default level, where libp2p
 * makes one scope per stream and none of their lines is written; a component's logger is
 * made once, not once per connection.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createLogger } from '../../src/logging/logger.ts'
import { pinoComponentLogger } from '../../src/logging/libp2p-logger.ts'

function capture (level: 'info' | 'trace'): { lines: Array<Record<string, unknown>>, components: ReturnType<typeof pinoComponentLogger> } {
  const lines: Array<Record<string, unknown>> = []
  const root = createLogger(level, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  return { lines, components: pinoComponentLogger(root) }
}

describe('libp2p logs through pino', () => {
  it('writes a scoped line with its component and scope when trace is on', () => {
    const { lines, components } = capture('trace')
    const scoped = components.forComponent('libp2p:yamux').newScope('stream-7')
    scoped('opened %s', 'inbound')
    scoped.error('reset %e', new Error('peer hung up'))
    assert.deepEqual(lines.map((line) => [line.libp2p, line.scope, line.msg]), [
      ['libp2p:yamux', 'stream-7', 'opened inbound'],
      ['libp2p:yamux', 'stream-7', lines[1]?.msg]
    ])
    assert.match(String(lines[1]?.msg), /^reset Error: peer hung up/)
  })

  it('makes no child logger per scope at the default level, and writes nothing', () => {
    const { lines, components } = capture('info')
    const component = components.forComponent('libp2p:yamux')
    const scoped = component.newScope('stream-7')
    assert.equal(scoped, component, 'the disabled logger itself stands for every scope')
    scoped('opened %s', 'inbound')
    scoped.error('reset %e', new Error('peer hung up'))
    assert.equal(scoped.enabled, false)
    assert.deepEqual(lines, [])
  })

  it('makes one logger per component, not one per connection that asks for it', () => {
    for (const level of ['info', 'trace'] as const) {
      const { lines, components } = capture(level)
      // libp2p asks for this one on every inbound TCP connection.
      const first = components.forComponent('libp2p:tcp:connection')
      const second = components.forComponent('libp2p:tcp:connection')
      assert.equal(second, first, `${level}: the same component gets the same logger`)
      assert.notEqual(components.forComponent('libp2p:yamux'), first, `${level}: another component gets its own`)
      second('closed %s', 'by remote')
      assert.deepEqual(lines.map((line) => line.libp2p), level === 'trace' ? ['libp2p:tcp:connection'] : [])
    }
  })
})
