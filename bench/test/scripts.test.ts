/**
 * Every bench and load test takes its flags through npm (issue 21 item 5): each `bench*` and
 * `loadtest*` script in package.json is run as `npm run <script> -- <flag>`, and the flag must
 * reach the script's own parser. `--help` prints the script's usage and exits 0 before any
 * work; an unknown flag is refused by the script (node's parseArgs), not by the shell. Nothing
 * is measured here: TEST_PG_ADMIN_URL is set to an address nothing listens on, so no
 * throwaway servers start, and no bench gets as far as connecting to it.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

interface Outcome { code: number, stdout: string, stderr: string }

async function npmRun (script: string, flag: string): Promise<Outcome> {
  return await new Promise((resolve) => {
    execFile('npm', ['run', '--silent', script, '--', flag], {
      cwd: ROOT,
      env: { ...process.env, TEST_PG_ADMIN_URL: 'postgres://nobody@127.0.0.1:1/unused', BENCH_SCALE: '0.01' },
      timeout: 60_000
    }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

const packageJson = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
const scripts = Object.keys(packageJson.scripts).filter((name) => /^(bench|loadtest)(:|$)/.test(name))

describe('bench and load-test npm scripts take their flags', () => {
  it('finds the scripts', () => {
    for (const name of ['bench', 'bench:ingest', 'bench:storage', 'bench:pinning', 'bench:connections', 'loadtest:swarm']) assert.ok(scripts.includes(name), `package.json has ${name}`)
  })

  for (const script of scripts) {
    it(`npm run ${script} -- --help prints the script's usage; an unknown flag is refused by the script, not the shell`, async () => {
      const [help, unknown] = await Promise.all([npmRun(script, '--help'), npmRun(script, '--no-such-flag')])
      assert.doesNotMatch(help.stderr, /syntax error/i, `npm run ${script} -- --help: the shell choked on the forwarded flag`)
      assert.equal(help.code, 0, `npm run ${script} -- --help exited ${help.code}: ${help.stderr}`)
      assert.match(help.stdout, /^usage: /m, `npm run ${script} -- --help printed its usage`)

      assert.doesNotMatch(unknown.stderr, /syntax error/i, `npm run ${script} -- --no-such-flag: the shell choked on the forwarded flag`)
      assert.notEqual(unknown.code, 0)
      assert.match(unknown.stderr, /Unknown option '--no-such-flag'/, `npm run ${script} -- --no-such-flag: the script's parser saw the flag`)
    })
  }
})
