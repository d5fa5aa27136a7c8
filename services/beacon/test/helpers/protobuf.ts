import { ProtobufReader, WIRE_TYPE } from '@pharos/protocol/protobuf.ts'

/**
 * Reads the top-level varint fields of a protobuf message (enough to inspect a status), with
 * the shared codec; throws its ProtobufDecodeError on bytes that are not protobuf.
 */
export function varintFields (bytes: Uint8Array): Map<number, number> {
  const fields = new Map<number, number>()
  for (const field = new ProtobufReader(bytes); field.next();) {
    if (field.wireType === WIRE_TYPE.varint) fields.set(field.number, field.value)
  }
  return fields
}
