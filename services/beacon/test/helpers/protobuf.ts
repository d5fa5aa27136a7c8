/** Reads the top-level varint fields of a protobuf message (enough to inspect a status). */
export function varintFields (bytes: Uint8Array): Map<number, number> {
  const fields = new Map<number, number>()
  let offset = 0
  const varint = (): number => {
    let value = 0
    let shift = 0
    for (;;) {
      const byte = bytes[offset++]
      if (byte === undefined) throw new Error('truncated varint')
      value += (byte & 0x7f) * 2 ** shift
      if ((byte & 0x80) === 0) return value
      shift += 7
    }
  }
  while (offset < bytes.length) {
    const tag = varint()
    const field = Math.floor(tag / 8)
    switch (tag & 7) {
      case 0: fields.set(field, varint()); break
      case 2: { const length = varint(); offset += length; break }
      case 1: offset += 8; break
      case 5: offset += 4; break
      default: throw new Error(`unsupported wire type in tag ${tag}`)
    }
  }
  return fields
}
