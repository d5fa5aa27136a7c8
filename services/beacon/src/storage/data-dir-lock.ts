import { link, mkdir, readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'

/** The lock file's name in the data dir. */
export const DATA_DIR_LOCK_FILE = 'worker.lock'

/**
 * The holder touches the lock this often, so a lock left by a worker that died on another
 * host (a container recreated on a shared volume) can be told from a live one (guess: often
 * enough that a takeover waits half a minute, rare enough to cost nothing).
 */
export const LOCK_REFRESH_MS = 10_000
/** A lock not touched for this long is stale, whoever wrote it (three missed refreshes). */
export const LOCK_STALE_MS = 3 * LOCK_REFRESH_MS

/** Links tried before giving up to workers that keep taking the lock first (guess: two racers need two). */
const TAKE_ATTEMPTS = 3

/**
 * Lock files this process holds: a lock naming this process's pid is stale only if it is not
 * one of them (two workers embedded in one process are still two workers).
 */
const heldHere = new Set<string>()

/** What the lock file holds: enough to find the holder and to tell whether it still runs. */
interface LockHolder {
  pid: number
  host: string
  /** ISO time the holder took the lock. */
  since: string
}

/** Another live worker holds the data dir. The message is the one line an operator reads. */
export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError'
  readonly lockFile: string

  constructor (lockFile: string, holder: LockHolder) {
    super(`PHAROS_DATA_DIR is in use by another Pharos worker (pid ${holder.pid} on ${holder.host}, since ${holder.since}; lock ${lockFile}): stop it, or give this worker a data dir of its own`)
    this.lockFile = lockFile
  }
}

function parseHolder (raw: string): LockHolder | undefined {
  try {
    const value = JSON.parse(raw) as Partial<LockHolder>
    if (Number.isSafeInteger(value.pid) && typeof value.host === 'string' && typeof value.since === 'string') return value as LockHolder
  } catch {
    // not JSON: unreadable, like any other shape
  }
  return undefined
}

/** Whether process `pid` exists on this host (EPERM: it does, as another user). */
function processExists (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Why the lock in `file` no longer protects anything, or undefined while its holder may live:
 * unreadable; written on this host by a process that is gone (or under this process's pid
 * but not held by it: a previous life of this container, whose pid 1 was this one's too); or not touched for
 * LOCK_STALE_MS (its holder, wherever it ran, stopped refreshing it).
 */
async function staleness (file: string, holder: LockHolder | undefined, now: number): Promise<string | undefined> {
  if (holder === undefined) return 'unreadable'
  if (holder.host === hostname()) {
    if (holder.pid === process.pid) {
      if (!heldHere.has(file)) return `written by pid ${holder.pid}, this process's own pid, which does not hold it (a previous life of this container)`
    } else if (!processExists(holder.pid)) {
      return `pid ${holder.pid} is gone`
    }
  }
  const touched = (await stat(file)).mtimeMs
  if (now - touched > LOCK_STALE_MS) return `not refreshed for ${Math.round((now - touched) / 1000)} s`
  return undefined
}

export interface DataDirLock {
  readonly file: string
  /** Why an earlier lock was taken over (a worker that died without releasing it), if one was. */
  readonly tookOver: string | undefined
  /** Stops refreshing and removes the lock file (if it is still this worker's). */
  release: () => Promise<void>
}

/**
 * Takes the data dir for this process alone: PGlite, the generated peer key and admin token
 * live there, and two workers on one data dir would corrupt the database and share a peer
 * ID. The lock is a file holding `{ pid, host, since }`, written whole under a temporary name
 * and linked into place (link(2) fails if the name exists, so exactly one of two starting
 * workers gets it, and nobody ever reads a half-written lock). The holder touches it every
 * LOCK_REFRESH_MS. A stale lock (see `staleness`) is taken over; a live one throws
 * DataDirLockedError naming the holder and the file.
 */
export async function lockDataDir (dataDir: string, options: { now?: () => number } = {}): Promise<DataDirLock> {
  const now = options.now ?? Date.now
  await mkdir(dataDir, { recursive: true })
  const file = join(dataDir, DATA_DIR_LOCK_FILE)
  const self: LockHolder = { pid: process.pid, host: hostname(), since: new Date(now()).toISOString() }
  const mine = JSON.stringify(self) + '\n'
  const temporary = `${file}.${process.pid}.tmp`
  await writeFile(temporary, mine, { mode: 0o644 })
  let tookOver: string | undefined
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await link(temporary, file)
        break
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        // Another worker took it between our takeover and our link, more than once: give up.
        if (attempt > TAKE_ATTEMPTS) throw new DataDirLockedError(file, parseHolder(await readFile(file, 'utf8').catch(() => '')) ?? { pid: 0, host: 'unknown', since: 'unknown' })
      }
      let raw: string
      try {
        raw = await readFile(file, 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue // released meanwhile
        throw err
      }
      const holder = parseHolder(raw)
      const stale = await staleness(file, holder, now())
      if (stale === undefined && holder !== undefined) throw new DataDirLockedError(file, holder)
      tookOver = stale
      await unlink(file).catch((err: unknown) => { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err })
    }
  } finally {
    await unlink(temporary).catch(() => {})
  }

  heldHere.add(file)
  const refresh = setInterval(() => {
    const at = new Date()
    utimes(file, at, at).catch(() => {}) // a missed touch only shortens the time to staleness
  }, LOCK_REFRESH_MS)
  refresh.unref()
  let released = false
  return {
    file,
    tookOver,
    async release () {
      if (released) return
      released = true
      clearInterval(refresh)
      heldHere.delete(file)
      // Only our own: a lock another worker took over (ours went stale) is theirs now.
      const current = await readFile(file, 'utf8').catch(() => undefined)
      if (current === mine) await unlink(file).catch(() => {})
    }
  }
}
