/**
 * `npm run test:all` runs the node tests and the fault scenario through scripts/run-stages.sh:
 * a failure in the first stage must not skip the second, and must still fail the command.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { runProcess } from '@pharos/testing/worker-process.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const RUN_STAGES = join(ROOT, 'scripts', 'run-stages.sh')

describe('scripts/run-stages.sh', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'pharos-stages-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })
  const env = { PATH: process.env.PATH ?? '' }

  it('runs a later stage after an earlier one fails, then fails naming the failed stage', async () => {
    const marker = join(dir, 'second-ran')
    const result = await runProcess(RUN_STAGES, ['exit 3', `touch ${marker}`], { env })
    assert.equal(result.code, 1, result.stderr)
    assert.ok(existsSync(marker), 'the second stage ran although the first failed')
    assert.match(result.stderr, /failed stages:\s*\n\s*- exit 3/)
  })

  it('fails when only the last stage fails', async () => {
    const result = await runProcess(RUN_STAGES, ['true', 'false'], { env })
    assert.equal(result.code, 1)
    assert.match(result.stderr, /- false/)
  })

  it('passes when every stage passes', async () => {
    const result = await runProcess(RUN_STAGES, ['true', 'true'], { env })
    assert.equal(result.code, 0, result.stderr)
  })

  it('is what npm run test:all runs, over the node tests and the scenarios', async () => {
    const { scripts } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    assert.equal(scripts['test:all'], "scripts/run-stages.sh 'npm run test:node' 'npm run test:scenarios'")
  })
})
