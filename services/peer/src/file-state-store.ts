/**
 * A PeerStateStore in a folder (Node): each document is `<dir>/<name>.json`, replaced by a
 * write to a temp file beside it and a rename, so a crash leaves the old document or the new
 * one, never half of one; never written through a symbolic link (safe-write.ts).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { mkdirNoFollow, writeFileNoFollow } from './safe-write.ts'
import type { PeerStateStore } from './state-store.ts'

const NAME = /^[a-z][a-z0-9-]{0,63}$/

export function fileStateStore (dir: string): PeerStateStore {
  const pathOf = (name: string): string => {
    if (!NAME.test(name)) throw new RangeError(`state document name ${JSON.stringify(name)} must match ${String(NAME)}`)
    return join(dir, `${name}.json`)
  }
  return {
    async read (name) {
      try {
        return await readFile(pathOf(name), 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw err
      }
    },
    async write (name, text) {
      await mkdirNoFollow(dir)
      await writeFileNoFollow(pathOf(name), text, { mode: 0o600 })
    }
  }
}
