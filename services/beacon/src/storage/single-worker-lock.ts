import pg from 'pg'

/** Any constant works; it only has to be the same on every worker. */
const SINGLE_WORKER_LOCK_KEY = 0x50484153 // "PHAS"

/** Another worker already runs on this Postgres without Redis. */
export class SecondWorkerWithoutRedisError extends Error {
  override readonly name = 'SecondWorkerWithoutRedisError'
  constructor () {
    super('another Pharos worker already runs on this DATABASE_URL without REDIS_URL; workers of a fleet share seen messages and peer views through Redis, so set REDIS_URL on every worker to run more than one')
  }
}

/**
 * Without Redis, shared state lives in process, so only one worker may use a database.
 * The worker holds a session advisory lock for its whole life on a connection of its own;
 * a second worker fails to take it and stops at start with a clear reason.
 */
export async function holdSingleWorkerLock (url: string): Promise<{ release: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {}) // the lock dies with the connection; nothing else to do
  await client.connect()
  const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [SINGLE_WORKER_LOCK_KEY])
  if (rows[0]?.locked !== true) {
    await client.end()
    throw new SecondWorkerWithoutRedisError()
  }
  return { release: async () => { await client.end() } }
}
