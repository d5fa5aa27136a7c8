/**
 * Sets `key` as the newest entry of `map`, dropping the oldest once it holds more than `cap`:
 * the bounded, oldest-first record that caches of hearsay (who named a peer, what a validator
 * accepted, what was fetched by GRAFT) keep. A Map iterates in insertion order, so the first
 * key is the oldest.
 */
export function setNewest<K, V> (map: Map<K, V>, key: K, value: V, cap: number): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > cap) {
    const oldest = map.keys().next().value
    if (oldest !== undefined) map.delete(oldest)
  }
}
