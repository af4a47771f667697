/**
 * The IDX format itself (header checks and parsing of bytes in memory), without Node built-ins so
 * the browser build parses the same files; idx.ts reads them from disk.
 */
import { DatasetError } from './errors.js';

export interface IdxArray {
  /** Dimension sizes from the header. */
  shape: number[];
  /** The unsigned bytes, row-major, exactly product(shape) long. */
  data: Uint8Array;
}

const IDX_TYPE_NAMES: Record<number, string> = {
  8: 'unsigned byte',
  9: 'signed byte',
  11: 'int16',
  12: 'int32',
  13: 'float32',
  14: 'float64',
};

interface IdxHeader {
  shape: number[];
  headerBytes: number;
  dataBytes: number;
}

export function parseIdxHeader(bytes: Uint8Array, file: string): IdxHeader {
  if (bytes.length < 4) throw new DatasetError(`truncated IDX file: ${bytes.length} bytes, the magic number alone needs 4`, file);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
    throw new DatasetError(`wrong magic number 0x${magic}: not an IDX file (expected 0x0000TTDD)`, file);
  }
  const type = bytes[2]!;
  const ndims = bytes[3]!;
  if (!(type in IDX_TYPE_NAMES)) throw new DatasetError(`wrong magic number: unknown IDX data type 0x${type.toString(16)}`, file);
  if (type !== 0x08)
    throw new DatasetError(`IDX data type is ${IDX_TYPE_NAMES[type]}; only unsigned byte (0x08) images and labels are supported`, file);
  if (ndims === 0) throw new DatasetError('IDX header declares 0 dimensions', file);
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes)
    throw new DatasetError(`truncated IDX file: header needs ${headerBytes} bytes, file has ${bytes.length}`, file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let dataBytes = 1;
  for (let d = 0; d < ndims; d++) {
    const size = view.getUint32(4 + 4 * d, false);
    shape.push(size);
    dataBytes *= size;
  }
  return { shape, headerBytes, dataBytes };
}

function checkLength(h: IdxHeader, actual: number, file: string): void {
  const expected = h.headerBytes + h.dataBytes;
  if (actual < expected) {
    throw new DatasetError(
      `truncated IDX file: header declares shape [${h.shape.join(', ')}] = ${expected} bytes, file has ${actual}`,
      file,
    );
  }
  if (actual > expected) {
    throw new DatasetError(`IDX file has ${actual - expected} bytes after the declared shape [${h.shape.join(', ')}]`, file);
  }
}

/** Parses an uncompressed IDX file held in memory. `file` names it in errors. */
export function parseIdx(bytes: Uint8Array, file = '<idx>'): IdxArray {
  const h = parseIdxHeader(bytes, file);
  checkLength(h, bytes.length, file);
  return { shape: h.shape, data: bytes.subarray(h.headerBytes) };
}
