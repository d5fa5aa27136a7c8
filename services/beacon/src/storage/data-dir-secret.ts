import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * A secret kept in the data dir: read it if it is there, otherwise make it once and write it
 * with mode 0600. `wx` makes a second writer fail rather than overwrite the first's secret.
 */
export async function readOrCreateSecret (dataDir: string, name: string, create: () => Promise<string>): Promise<{ value: string, file: string, created: boolean }> {
  const file = join(dataDir, name)
  try {
    return { value: (await readFile(file, 'utf8')).trim(), file, created: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const value = await create()
  await mkdir(dataDir, { recursive: true })
  await writeFile(file, value + '\n', { mode: 0o600, flag: 'wx' })
  return { value, file, created: true }
}
