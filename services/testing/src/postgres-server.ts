/**
 * A Postgres server of a test's own, for tests that stop and restart it (a shared server
 * cannot go down under other test files). Uses the binaries the test command found
 * (TEST_PG_BIN); runs as the `postgres` user when the tests run as root, since Postgres
 * refuses root.
 */
import { execFile } from 'node:child_process'
import { chown, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './redis-servers.ts'

const run = promisify(execFile)

export interface PostgresServer {
  /** postgres://pharos@127.0.0.1:<port>/pharos */
  url: string
  port: number
  /** Stops the server at once (as a crash or an outage would). */
  stop: () => Promise<void>
  /** Starts it again on the same port and data directory. */
  start: () => Promise<void>
  /** Stops it and removes its data. */
  destroy: () => Promise<void>
}

export async function startPostgresServer (): Promise<PostgresServer> {
  const bin = process.env.TEST_PG_BIN
  if (bin === undefined) throw new Error('TEST_PG_BIN is unset: run tests through `npm test` (scripts/with-services.sh)')
  const asRoot = process.getuid?.() === 0
  const dir = await mkdtemp(join(tmpdir(), 'pharos-pg-'))
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres'])
    const { stdout: gid } = await run('id', ['-g', 'postgres'])
    await chown(dir, Number(stdout.trim()), Number(gid.trim()))
  }
  const asPostgres = async (tool: string, args: string[]): Promise<void> => {
    if (asRoot) await run('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args])
    else await run(join(bin, tool), args)
  }
  const data = join(dir, 'data')
  const port = await freePort()
  await asPostgres('initdb', ['-D', data, '-U', 'pharos', '--auth=trust', '-E', 'UTF8'])
  // This server is stopped with `-m immediate` (a crash) on purpose, so a commit must have
  // reached the WAL before it is acknowledged: synchronous_commit stays on. fsync=off is
  // safe here: the OS keeps what was written when only the server process dies.
  const start = async (): Promise<void> => {
    await asPostgres('pg_ctl', ['-D', data, '-l', join(dir, 'pg.log'), '-w', '-o',
      `-h 127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c full_page_writes=off -c max_connections=200`, 'start'])
  }
  const stop = async (): Promise<void> => {
    await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'])
  }
  await start()
  await run(join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'pharos', 'pharos'])
  return {
    url: `postgres://pharos@127.0.0.1:${port}/pharos`,
    port,
    stop,
    start,
    async destroy () {
      await stop().catch(() => {})
      await rm(dir, { recursive: true, force: true })
    }
  }
}
