import type { MessageId } from './messages.ts'

/**
 * Payloads the application rejected, by message ID, so the same bytes under the same ID are
 * rejected again without being judged again. Rejected IDs are forgotten (a valid copy under
 * one can still come: on `content` an ID names the entry, not its envelope), so without this
 * every neighbour that forwards the same forged copy, and every GRAFT answered with it, costs
 * a validation, and the application counts one forgery many times. Only byte-identical copies
 * match: a verdict of `reject` depends on the bytes alone (validators answer `ignore` for
 * whatever depends on time or on a registry). Bounded by count and by bytes, oldest first;
 * a payload larger than the byte bound is not remembered.
 */
export class RejectedCopies {
  readonly #maxEntries: number
  readonly #maxBytes: number
  readonly #copies = new Map<MessageId, Uint8Array>()
  #bytes = 0

  constructor(maxEntries: number, maxBytes: number) {
    this.#maxEntries = maxEntries
    this.#maxBytes = maxBytes
  }

  remember(id: MessageId, payload: Uint8Array): void {
    this.forget(id)
    if (payload.length > this.#maxBytes) return
    this.#copies.set(id, payload)
    this.#bytes += payload.length
    for (const [oldest, copy] of this.#copies) {
      if (this.#copies.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break
      this.#copies.delete(oldest)
      this.#bytes -= copy.length
    }
  }

  /** `payload` is, byte for byte, a copy of `id` already rejected. */
  matches(id: MessageId, payload: Uint8Array): boolean {
    const copy = this.#copies.get(id)
    return copy !== undefined && sameBytes(copy, payload)
  }

  forget(id: MessageId): void {
    const copy = this.#copies.get(id)
    if (copy === undefined) return
    this.#copies.delete(id)
    this.#bytes -= copy.length
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
