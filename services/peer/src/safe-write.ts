/**
 * File writes that never follow a symbolic link, for the CLI's outputs (key files, fetched
 * logs). A link at the target, or at a folder under the output root, is refused with
 * SymlinkTargetError; parents of the path the user named are theirs to choose (on macOS
 * `/tmp` itself is a link).
 *
 * - A new file (no overwrite): opened with O_CREAT | O_EXCL | O_NOFOLLOW, which fails on any
 *   existing entry, a link included, so nothing is replaced and nothing followed.
 * - A replaced file: written to a fresh temp file beside it (O_EXCL | O_NOFOLLOW), then
 *   renamed over the target. A rename replaces the directory entry, never writes through it,
 *   so a link that appears between the check and the rename is replaced, not followed.
 *
 * Either way the mode is set on the open file (fchmod), so a replaced key file is 0600 even
 * if the file it replaces was not, and the umask cannot widen or narrow it.
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { lstat, mkdir, open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { SymlinkTargetError } from './errors.ts'

export interface SafeWriteOptions {
  /** Permission bits of the written file, exactly. @default 0o644 */
  mode?: number
  /** Replace an existing file; otherwise an existing entry fails with EEXIST. @default true */
  overwrite?: boolean
}

const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW

async function lstatOrUndefined (path: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  try {
    return await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

async function writeNew (path: string, data: Uint8Array | string, mode: number): Promise<void> {
  const handle = await open(path, NEW_FILE, mode)
  try {
    await handle.writeFile(data)
    await handle.chmod(mode)
  } catch (err) {
    await handle.close().catch(() => {})
    await unlink(path).catch(() => {})
    throw err
  }
  await handle.close()
}

/** Writes `data` to `path` without following a link there (see the module comment). */
export async function writeFileNoFollow (path: string, data: Uint8Array | string, options: SafeWriteOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o644
  if ((await lstatOrUndefined(path))?.isSymbolicLink() === true) throw new SymlinkTargetError(path)
  if (options.overwrite === false) {
    try {
      await writeNew(path, data, mode)
    } catch (err) {
      // O_NOFOLLOW on a link that appeared since the check: ELOOP.
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new SymlinkTargetError(path)
      throw err
    }
    return
  }
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  await writeNew(temp, data, mode)
  try {
    await rename(temp, path)
  } catch (err) {
    await unlink(temp).catch(() => {})
    throw err
  }
}

/**
 * Makes `root` and the folders of `relativeDir` under it, refusing any of them that is a
 * link (the root's own parents are the caller's choice). Returns the folder's path.
 */
export async function mkdirNoFollow (root: string, relativeDir = ''): Promise<string> {
  const base = resolve(root)
  await mkdir(dirname(base), { recursive: true })
  const parts = relativeDir === '' ? [] : relativeDir.split(/[\\/]+/).filter((part) => part !== '' && part !== '.')
  if (parts.includes('..')) throw new Error(`refusing a folder outside ${base}: ${relativeDir}`)
  const dirs = [base, ...parts.map((_, i) => join(base, ...parts.slice(0, i + 1)))]
  for (const dir of dirs) {
    const found = await lstatOrUndefined(dir)
    if (found?.isSymbolicLink() === true) throw new SymlinkTargetError(dir)
    if (found === undefined) {
      try {
        await mkdir(dir)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        // Made meanwhile: look again.
        if ((await lstat(dir)).isSymbolicLink()) throw new SymlinkTargetError(dir)
      }
    } else if (!found.isDirectory()) {
      throw new Error(`${dir} exists and is not a folder`)
    }
  }
  return dirs.at(-1) ?? base
}
