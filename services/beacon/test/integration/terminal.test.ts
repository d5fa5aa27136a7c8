/**
 * The worker at a terminal (issue 20, item 8): pretty log lines when stdout is a terminal,
 * pino JSON otherwise, PHAROS_LOG_FORMAT overriding either way; `--version` prints the
 * package version.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { chooseLogFormat } from '../../src/logging/logger.ts'
import { MAIN, runMain, workerEnv } from '@pharos/testing/worker-process.ts'

const ROOT_PACKAGE = new URL('../../../../package.json', import.meta.url)

function isJsonObject (line: string): boolean {
  try {
    const value: unknown = JSON.parse(line)
    return typeof value === 'object' && value !== null
  } catch {
    return false
  }
}

describe('the log format', () => {
  it('is pretty on a terminal and JSON elsewhere, unless PHAROS_LOG_FORMAT says which', () => {
    assert.equal(chooseLogFormat('auto', true), 'pretty')
    assert.equal(chooseLogFormat('auto', false), 'json')
    assert.equal(chooseLogFormat('json', true), 'json', 'json on a terminal when asked')
    assert.equal(chooseLogFormat('pretty', false), 'pretty', 'pretty into a pipe when asked')
  })

  it('with PHAROS_LOG_FORMAT=pretty, a worker writing into a pipe logs readable lines, not JSON', async () => {
    const child = spawn(process.execPath, [MAIN], { env: await workerEnv({ PHAROS_LOG_FORMAT: 'pretty' }), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no start line within 60 s; stdout: ${stdout}; stderr: ${stderr}`)) }, 60_000)
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk
        if (stdout.includes('pharos beacon started')) { clearTimeout(timer); resolve() }
      })
      void exited.then((code) => { clearTimeout(timer); reject(new Error(`exited ${code}: ${stderr}`)) })
    })
    child.kill('SIGTERM')
    await exited
    const lines = stdout.split('\n').filter((line) => line.trim() !== '')
    assert.ok(lines.length > 3, stdout)
    assert.deepEqual(lines.filter(isJsonObject), [], 'no line is a JSON object')
    const started = lines.find((line) => line.includes('pharos beacon started')) ?? assert.fail()
    assert.match(started, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: pharos beacon started/, 'time, level and message lead the line')
    assert.ok(lines.some((line) => /^\s+peerId: "12D3KooW/.test(line)), 'fields follow, one a line')
    assert.ok(!stdout.includes('\u001b['), 'no colour codes into a pipe')
  })

  it('without PHAROS_LOG_FORMAT, a worker writing into a pipe logs JSON', async () => {
    const child = spawn(process.execPath, [MAIN], { env: await workerEnv(), stdio: ['ignore', 'pipe', 'ignore'] })
    const firstLine = await new Promise<string>((resolve) => {
      let buffered = ''
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        buffered += chunk
        const newline = buffered.indexOf('\n')
        if (newline !== -1) resolve(buffered.slice(0, newline))
      })
    })
    child.kill('SIGKILL')
    assert.ok(isJsonObject(firstLine), firstLine)
  })
})

describe('pharos-beacon --version', () => {
  it('prints the package version and exits 0', async () => {
    const { version } = JSON.parse(await readFile(ROOT_PACKAGE, 'utf8')) as { version: string }
    const result = await runMain(await workerEnv(), ['--version'])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, `pharos-beacon ${version}\n`)
  })
})
