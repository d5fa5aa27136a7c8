/**
 * The listeners of one kind of event. `add` returns the function that removes the listener;
 * `notify` calls each in turn, and one that throws is reported to `onError` without keeping
 * the others from hearing the event (or unwinding the caller, which is usually a read loop).
 */
export class Listeners<T> {
  readonly #listeners = new Set<(event: T) => void>()
  readonly #onError: (err: unknown) => void

  constructor (onError: (err: unknown) => void) {
    this.#onError = onError
  }

  add (listener: (event: T) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  notify (event: T): void {
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch (err) {
        this.#onError(err)
      }
    }
  }

  get size (): number {
    return this.#listeners.size
  }
}
