/**
 * Reading bytea as bytes from a Postgres server: `COPY (query) TO STDOUT (FORMAT binary)`.
 *
 * node-postgres reads bytea in text format, as hex: twice the bytes on the wire and a hex
 * decode per row (a 256 KiB block arrives as 512 KiB of text). Its `binary: true` result mode
 * does not help: pg-protocol 1.x decodes every DataRow field as UTF-8 text before pg-types
 * sees it, which corrupts arbitrary bytes. CopyData messages, on the other hand, reach the
 * query as raw bytes, so a binary COPY is the byte-exact path `pg` offers without a patch.
 * Measured in bench/storage (docs/benchmarks.md).
 *
 * The binary COPY format (PostgreSQL docs, "COPY", "Binary Format"): an 11-byte signature,
 * a 4-byte flags field and a 4-byte header-extension length (plus the extension); then per
 * tuple an int16 field count and per field an int32 length (-1 for NULL) and the bytes; and
 * an int16 -1 trailer.
 */

/** The stream is not binary COPY output (wrong signature, or it ended mid-tuple). */
export class BinaryCopyFormatError extends Error {
  override readonly name = 'BinaryCopyFormatError'
}

/** One row of a binary COPY: each column's raw bytes, or `null`. */
export type ByteaRow = Array<Uint8Array | null>

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')
/** Signature, flags and header-extension length. */
const HEADER_LENGTH = SIGNATURE.byteLength + 4 + 4

type Stage =
  | { kind: 'header' }
  | { kind: 'extension', length: number }
  | { kind: 'field-count' }
  | { kind: 'field-length', fieldsLeft: number }
  | { kind: 'field-bytes', fieldsLeft: number, length: number, bytes: Uint8Array | undefined, filled: number }
  | { kind: 'done' }

/**
 * Parses binary COPY output fed chunk by chunk (one CopyData message at a time). Postgres
 * sends one message per tuple, but the protocol does not promise it, so any split works.
 *
 * Each field's bytes are copied once, out of the chunk, into a buffer of their own: the
 * chunks `pg` hands over are views into its receive buffer, which it reuses. Except a chunk
 * the caller says is sealed (patched pg-protocol: a large message in a buffer of its own that
 * no later read overwrites): a field it holds whole and that fills most of that buffer is
 * kept as a view, not copied, so a 1 MiB block read allocates the block once, not twice
 * (the garbage that set the worker's memory while streaming CARs, docs/benchmarks.md). Only
 * most of the buffer: a view of a small field would keep the whole buffer alive.
 */
export class BinaryCopyParser {
  readonly rows: ByteaRow[] = []
  /** Called with each row once its last field is read. */
  private readonly onRow: (row: ByteaRow, index: number) => void

  constructor (onRow: (row: ByteaRow, index: number) => void = () => {}) {
    this.onRow = onRow
  }

  private stage: Stage = { kind: 'header' }
  private row: ByteaRow = []
  /** Bytes of a small structure (header, count, length) split across chunks. */
  private carry: Buffer = Buffer.alloc(0)

  /** `sealed`: no one writes `chunk`'s underlying buffer again, so its bytes may be kept as they are. */
  push (chunk: Uint8Array, sealed = false): void {
    let at = 0
    while (at < chunk.byteLength) {
      const stage = this.stage
      if (stage.kind === 'done') throw new BinaryCopyFormatError('data after the binary COPY trailer')
      if (stage.kind === 'field-bytes') {
        if (stage.bytes === undefined) {
          if (sealed && chunk.byteLength - at >= stage.length && stage.length * 2 >= chunk.buffer.byteLength) {
            at += stage.length
            this.endField(new Uint8Array(chunk.buffer, chunk.byteOffset + at - stage.length, stage.length), stage.fieldsLeft)
            continue
          }
          stage.bytes = new Uint8Array(stage.length)
        }
        const take = Math.min(stage.length - stage.filled, chunk.byteLength - at)
        stage.bytes.set(chunk.subarray(at, at + take), stage.filled)
        stage.filled += take
        at += take
        if (stage.filled === stage.length) this.endField(stage.bytes, stage.fieldsLeft)
        continue
      }
      const need = this.structureLength(stage)
      const take = Math.min(need - this.carry.byteLength, chunk.byteLength - at)
      this.carry = this.carry.byteLength === 0 && take === need
        ? Buffer.from(chunk.buffer, chunk.byteOffset + at, take)
        : Buffer.concat([this.carry, chunk.subarray(at, at + take)])
      at += take
      if (this.carry.byteLength < need) return
      const structure = this.carry
      this.carry = Buffer.alloc(0)
      this.readStructure(stage, structure)
    }
  }

  /** The rows, once the trailer was read; throws if the stream ended early. */
  finish (): ByteaRow[] {
    if (this.stage.kind !== 'done') throw new BinaryCopyFormatError(`binary COPY output ended early (while reading ${this.stage.kind})`)
    return this.rows
  }

  private structureLength (stage: Exclude<Stage, { kind: 'field-bytes' | 'done' }>): number {
    switch (stage.kind) {
      case 'header': return HEADER_LENGTH
      case 'extension': return stage.length
      case 'field-count': return 2
      case 'field-length': return 4
    }
  }

  private readStructure (stage: Exclude<Stage, { kind: 'field-bytes' | 'done' }>, bytes: Buffer): void {
    switch (stage.kind) {
      case 'header': {
        if (!bytes.subarray(0, SIGNATURE.byteLength).equals(SIGNATURE)) throw new BinaryCopyFormatError('not binary COPY output: bad signature')
        const extension = bytes.readUInt32BE(SIGNATURE.byteLength + 4)
        this.stage = extension === 0 ? { kind: 'field-count' } : { kind: 'extension', length: extension }
        return
      }
      case 'extension':
        this.stage = { kind: 'field-count' }
        return
      case 'field-count': {
        const count = bytes.readInt16BE(0)
        if (count === -1) {
          this.stage = { kind: 'done' }
        } else if (count === 0) {
          this.endRow([])
        } else {
          this.row = []
          this.stage = { kind: 'field-length', fieldsLeft: count }
        }
        return
      }
      case 'field-length': {
        const length = bytes.readInt32BE(0)
        if (length < -1) throw new BinaryCopyFormatError(`a field of negative length ${length}`)
        if (length === -1) this.endField(null, stage.fieldsLeft)
        else if (length === 0) this.endField(new Uint8Array(0), stage.fieldsLeft)
        else this.stage = { kind: 'field-bytes', fieldsLeft: stage.fieldsLeft, length, bytes: undefined, filled: 0 }
      }
    }
  }

  private endField (value: Uint8Array | null, fieldsLeft: number): void {
    this.row.push(value)
    if (fieldsLeft > 1) {
      this.stage = { kind: 'field-length', fieldsLeft: fieldsLeft - 1 }
    } else {
      const row = this.row
      this.row = []
      this.stage = { kind: 'field-count' }
      this.endRow(row)
    }
  }

  private endRow (row: ByteaRow): void {
    this.rows.push(row)
    this.onRow(row, this.rows.length - 1)
  }
}

/** A bytea SQL literal of `bytes` (hex digits only, so it cannot break out of its quotes). */
export function byteaLiteral (bytes: Uint8Array): string {
  return `'\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}'::bytea`
}

/** The part of a `pg` connection a submitted query writes to. */
interface PgConnection { query: (text: string) => void }

/**
 * `COPY (query) TO STDOUT (FORMAT binary)` as a `pg` Submittable: `client.query(copy)` runs
 * it on that client's connection, the parser reads each CopyData message, and `rows`
 * settles when the server is ready for the next query. One round trip, as a plain query.
 */
export class BinaryCopyOut {
  readonly rows: Promise<ByteaRow[]>
  private readonly text: string
  private readonly parser: BinaryCopyParser
  private failure: Error | undefined
  private resolve!: (rows: ByteaRow[]) => void
  private reject!: (err: Error) => void

  /**
   * `query` is a SELECT, or INSERT/UPDATE/DELETE … RETURNING, with no parameters; `onRow`
   * sees each row as soon as it is read (before `rows` settles).
   */
  constructor (query: string, onRow?: (row: ByteaRow, index: number) => void) {
    this.text = `COPY (${query}) TO STDOUT (FORMAT binary)`
    this.parser = new BinaryCopyParser(onRow)
    this.rows = new Promise((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
    // The caller may stop listening on an error it already saw through `handleError`.
    this.rows.catch(() => {})
  }

  submit (connection: PgConnection): void {
    connection.query(this.text)
  }

  /** `sealed` is set by the patched pg-protocol (patches/pg-protocol+1.16.1.patch). */
  handleCopyData (message: { chunk: Uint8Array, sealed?: boolean }): void {
    if (this.failure !== undefined) return
    try {
      this.parser.push(message.chunk, message.sealed === true)
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err))
    }
  }

  handleError (err: Error): void {
    this.failure ??= err
    // A connection that dies never sends ReadyForQuery: settle now.
    this.reject(this.failure)
  }

  handleReadyForQuery (): void {
    if (this.failure !== undefined) {
      this.reject(this.failure)
      return
    }
    try {
      this.resolve(this.parser.finish())
    } catch (err) {
      this.reject(err instanceof Error ? err : new Error(String(err)))
    }
  }

  // The other messages of a COPY exchange carry nothing this query needs.
  handleCommandComplete (): void {}
  handleRowDescription (): void {}
  handleDataRow (): void {}
  handleEmptyQuery (): void {}
  handlePortalSuspended (): void {}
  handleCopyInResponse (): void {}
}
