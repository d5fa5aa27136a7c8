/** How the SDK sorts the failures it meets while asking beacons. */
import { KeyDeniedError, ReceiptVerificationError, RemoteError } from './errors.ts'

export function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

/**
 * A failure after which asking another beacon would not help: our request itself is refused.
 * A key denial by rule is; a beacon that lacks the key, or sent a wrong one, is not.
 */
export function isDefinitive (err: unknown): boolean {
  return (err instanceof KeyDeniedError && (err.code === 'not-entitled' || err.code === 'unregistered')) || err instanceof ReceiptVerificationError || (err instanceof RemoteError && err.code === 'bad-request')
}
