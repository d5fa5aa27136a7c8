/** Concatenates a block's or file's chunks. With `max`, more than `max` bytes throws `tooLarge()` as soon as it is seen. */
export async function collectBytes (
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  bound?: { max: number, tooLarge: () => Error }
): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  let length = 0
  for await (const chunk of chunks) {
    length += chunk.length
    if (bound !== undefined && length > bound.max) throw bound.tooLarge()
    parts.push(chunk)
  }
  if (parts.length === 1 && parts[0] !== undefined) return parts[0]
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
