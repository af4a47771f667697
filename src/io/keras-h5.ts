/**
 * Keras legacy H5 weight files (`model.save_weights('x.h5')`, and the official
 * `xception_weights_tf_dim_ordering_tf_kernels*.h5`):
 *
 *   /                     attrs: layer_names (fixed-length byte strings), backend, keras_version
 *   /<layer>              attrs: weight_names (fixed-length byte strings; an empty float64 array
 *                                 for a layer without weights)
 *   /<layer>/<weight>     float32 datasets, e.g. /block1_conv1/block1_conv1/kernel:0
 *
 * A whole-model file (`model.save('x.h5')`) has the same layout under /model_weights; it is read
 * too. An attribute too large for an HDF5 object header is split by Keras into `<name>0`,
 * `<name>1`, …; both forms are read and written.
 *
 * Reading is two-pass: all structure and every dataset's declared size are checked first (the sum
 * of declared sizes may not exceed the file size, since these files are never compressed), and
 * only then is any data read. A corrupt file therefore fails before a large allocation, and
 * nothing is returned half-read.
 */
import * as fsp from 'node:fs/promises';
import { WeightFileError } from './errors.js';
import { writeFileAtomic } from './atomic.js';
import {
  describeH5Failure,
  type H5Metadata,
  type H5Module,
  h5Module,
  H5T,
  type H5WriteMetadata,
  scratchPath,
  withHeapLimit,
} from './h5-runtime.js';
import { elementCount, type NamedWeight, shapeText } from './weights.js';

export interface KerasLayer {
  name: string;
  weights: NamedWeight[];
}

export interface KerasH5WriteOptions {
  /** Root attribute `keras_version` (default '2.15.0'). */
  kerasVersion?: string;
  /** Root attribute `backend` (default 'tensorflow'). */
  backend?: string;
  /**
   * More root attributes, which Keras ignores: a string is written as a scalar string, a list as
   * a list of strings (split into `<name>0`, `<name>1`, … when too large, as Keras does).
   */
  attributes?: Readonly<Record<string, string | readonly string[]>>;
}

/** A Keras H5 file's layers and the extra root attributes asked for. */
export interface KerasH5Contents {
  layers: KerasLayer[];
  /** Requested string attributes that are present, each as a list (a scalar is a list of one). */
  attributes: Record<string, string[]>;
}

/** Root attributes that Keras itself reads or writes; extra attributes may not take these names. */
const KERAS_ROOT_ATTRIBUTES = ['layer_names', 'backend', 'keras_version', 'model_config', 'training_config'];

/** Keras splits attributes larger than this (HDF5's object header limit, minus headroom). */
const HDF5_OBJECT_HEADER_LIMIT = 64512;
const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];
const STR_SPACEPAD = 2;
/** Wasm heap growth allowed during a read on top of twice the file size (HDF5 metadata/chunk caches). */
const READ_HEAP_SLACK = 64 * 1024 * 1024;

export interface KerasH5ReadOptions {
  /** Name used for in-memory bytes in error messages (default '<keras h5>'). */
  label?: string;
  /**
   * Parse in a worker thread (default true). HDF5 runs as WebAssembly and trusts the file's
   * structure; in a worker, a file that makes it loop or abort costs a terminated worker and a
   * WeightFileError, never a hung or dead process. `false` parses on the calling thread.
   */
  isolate?: boolean;
  /** Give up after this long (isolated reads only; default 30 s + 1 s per MB). */
  timeoutMs?: number;
  /** Root string attributes to return too (readKerasH5Contents). */
  attributes?: readonly string[];
}

/**
 * Reads a Keras H5 weight file from a path or from its bytes: the layers in `layer_names` order,
 * each with its weights as stored (names like `block1_conv1/kernel:0`). Any problem is a
 * WeightFileError naming the file.
 */
export async function readKerasH5(source: Uint8Array | string, options: KerasH5ReadOptions | string = {}): Promise<KerasLayer[]> {
  return (await readKerasH5Contents(source, options)).layers;
}

/** readKerasH5, with the root string attributes named in `options.attributes`. */
export async function readKerasH5Contents(
  source: Uint8Array | string,
  options: KerasH5ReadOptions | string = {},
): Promise<KerasH5Contents> {
  const opts: KerasH5ReadOptions = typeof options === 'string' ? { label: options } : options;
  let bytes: Uint8Array;
  let name: string;
  let owned = false;
  if (typeof source === 'string') {
    name = source;
    owned = true;
    try {
      bytes = await fsp.readFile(source);
    } catch (e) {
      throw new WeightFileError(source, `cannot read file (${(e as Error).message})`);
    }
  } else if (source instanceof Uint8Array) {
    bytes = source;
    name = opts.label ?? '<keras h5>';
  } else {
    throw new WeightFileError(opts.label ?? '<keras h5>', 'expected a path or a Uint8Array');
  }
  checkSignature(bytes, name);
  const attributes = opts.attributes ?? [];
  if (opts.isolate === false) return parseKerasH5Contents(bytes, name, attributes);
  const timeoutMs = opts.timeoutMs ?? 30_000 + Math.ceil(bytes.length / 1_000_000) * 1000;
  const { parseKerasH5Isolated } = await import('./h5-isolated.js');
  // Bytes read here from a path are ours to hand over to the worker without a copy.
  const transferable = owned && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  return parseKerasH5Isolated(bytes, name, timeoutMs, transferable, attributes);
}

function checkSignature(bytes: Uint8Array, name: string): void {
  if (!hasHdf5Signature(bytes)) {
    throw new WeightFileError(name, `not an HDF5 file (no HDF5 signature; ${bytes.length} bytes)`);
  }
}

/** Parses Keras H5 bytes on the calling thread. */
export async function parseKerasH5(bytes: Uint8Array, name: string): Promise<KerasLayer[]> {
  return (await parseKerasH5Contents(bytes, name)).layers;
}

/** parseKerasH5 with the named root string attributes (the worker uses this). */
export async function parseKerasH5Contents(bytes: Uint8Array, name: string, attributes: readonly string[] = []): Promise<KerasH5Contents> {
  checkSignature(bytes, name);
  const m = await h5Module();
  const memPath = scratchPath();
  const opened: { id: bigint | null } = { id: null };
  try {
    m.FS.writeFile(memPath, bytes);
    // Room for one dataset buffer (at most the file size) and HDF5's caches; more is a corrupt file.
    return withHeapLimit(m, 2 * bytes.length + READ_HEAP_SLACK, () => {
      const fileId = m.open(memPath, m.H5F_ACC_RDONLY, false, -1, -1);
      if (fileId < 0n) throw new WeightFileError(name, 'HDF5 could not open the file');
      opened.id = fileId;
      return readContents(m, fileId, name, bytes.length, attributes);
    });
  } catch (e) {
    if (e instanceof WeightFileError) throw e;
    throw new WeightFileError(name, describeH5Failure(e));
  } finally {
    if (opened.id !== null) {
      try {
        m.close_file(opened.id);
      } catch {
        /* the instance may be gone after a trap */
      }
    }
    try {
      m.FS.unlink(memPath);
    } catch {
      /* never written */
    }
  }
}

/** HDF5 looks for its signature at 0, 512, 1024, 2048, … (a user block may precede it). */
function hasHdf5Signature(bytes: Uint8Array): boolean {
  for (let at = 0; at + 8 <= bytes.length; at = at === 0 ? 512 : at * 2) {
    if (HDF5_SIGNATURE.every((b, i) => bytes[at + i] === b)) return true;
  }
  return false;
}

interface PlannedWeight {
  name: string;
  path: string;
  shape: number[];
  size: number; // bytes per element as stored: 4 or 8
  count: number;
}

function readContents(m: H5Module, fileId: bigint, file: string, fileSize: number, attributeNames: readonly string[]): KerasH5Contents {
  const fail = (problem: string): never => {
    throw new WeightFileError(file, problem);
  };
  let root = '/';
  if (!hasListAttribute(m, fileId, '/', 'layer_names')) {
    if (m.get_type(fileId, '/model_weights') === m.H5G_GROUP && hasListAttribute(m, fileId, '/model_weights', 'layer_names')) {
      root = '/model_weights';
    } else {
      fail('no "layer_names" attribute at the root or in /model_weights: not a Keras weight file');
    }
  }
  const layerNames = readStringList(m, fileId, root, 'layer_names', file, fileSize);

  // Pass 1: structure and declared sizes.
  const plan: { name: string; weights: PlannedWeight[] }[] = [];
  const seenLayers = new Set<string>();
  let declaredBytes = 0;
  for (const layer of layerNames) {
    if (layer.length === 0) fail('layer_names contains an empty name');
    if (seenLayers.has(layer)) fail(`layer "${layer}" is listed twice in layer_names`);
    seenLayers.add(layer);
    const groupPath = joinPath(root, layer);
    if (m.get_type(fileId, groupPath) !== m.H5G_GROUP) fail(`layer "${layer}" is listed in layer_names but has no group ${groupPath}`);
    if (!hasListAttribute(m, fileId, groupPath, 'weight_names')) fail(`layer "${layer}" has no "weight_names" attribute`);
    const weightNames = readStringList(m, fileId, groupPath, 'weight_names', file, fileSize);
    const weights: PlannedWeight[] = [];
    for (const wname of weightNames) {
      if (wname.length === 0) fail(`layer "${layer}" lists an empty weight name`);
      const path = joinPath(groupPath, wname);
      if (m.get_type(fileId, path) !== m.H5G_DATASET) fail(`layer "${layer}": weight "${wname}" has no dataset ${path}`);
      const md = m.get_dataset_metadata(fileId, path);
      if (md.type !== H5T.FLOAT || (md.size !== 4 && md.size !== 8)) {
        fail(`layer "${layer}": weight "${wname}" is not float32/float64 (HDF5 type class ${md.type}, ${md.size} bytes)`);
      }
      if (md.shape === null) fail(`layer "${layer}": weight "${wname}" has no dataspace (null)`);
      const shape = md.shape as number[];
      const count = elementCount(shape);
      if (count < 0 || count !== md.total_size)
        fail(`layer "${layer}": weight "${wname}" declares an impossible shape ${shapeText(shape)}`);
      declaredBytes += count * md.size;
      if (declaredBytes > fileSize) {
        fail(
          `layer "${layer}": weight "${wname}" ${shapeText(shape)} brings the declared data to ${declaredBytes} bytes, more than the ${fileSize}-byte file (compressed or corrupt file)`,
        );
      }
      weights.push({ name: wname, path, shape, size: md.size, count });
    }
    plan.push({ name: layer, weights });
  }

  const attributes: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const a of attributeNames) {
    if (hasListAttribute(m, fileId, root, a)) attributes[a] = readStringList(m, fileId, root, a, file, fileSize);
  }

  // Pass 2: data.
  const layers = plan.map((layer) => ({
    name: layer.name,
    weights: layer.weights.map((w) => ({ name: w.name, shape: [...w.shape], data: readFloatDataset(m, fileId, w) })),
  }));
  return { layers, attributes: { ...attributes } };
}

function readFloatDataset(m: H5Module, fileId: bigint, w: PlannedWeight): Float32Array {
  const nbytes = w.count * w.size;
  const out = new Float32Array(w.count);
  if (nbytes === 0) return out;
  const ptr = malloc(m, nbytes);
  try {
    // h5wasm reads into a little-endian copy of the stored type, whatever the file's byte order.
    m.get_dataset_data(fileId, w.path, null, null, null, BigInt(ptr));
    const raw = m.HEAPU8.slice(ptr, ptr + nbytes);
    if (w.size === 4) out.set(new Float32Array(raw.buffer));
    else out.set(new Float64Array(raw.buffer));
  } finally {
    m._free(ptr);
  }
  return out;
}

function malloc(m: H5Module, nbytes: number): number {
  const ptr = m._malloc(nbytes);
  if (ptr === 0) throw new Error(`the HDF5 heap cannot hold ${nbytes} bytes`);
  return ptr;
}

function joinPath(parent: string, child: string): string {
  return parent === '/' ? `/${child}` : `${parent}/${child}`;
}

function hasListAttribute(m: H5Module, fileId: bigint, path: string, name: string): boolean {
  const names = m.get_attribute_names(fileId, path);
  return names.includes(name) || names.includes(`${name}0`);
}

/** Keras's `load_attributes_from_hdf5_group`: `name`, or the chunks `name0`, `name1`, … concatenated. */
function readStringList(m: H5Module, fileId: bigint, path: string, name: string, file: string, fileSize: number): string[] {
  const attrs = new Set(m.get_attribute_names(fileId, path));
  if (attrs.has(name)) return readStringAttribute(m, fileId, path, name, file, fileSize);
  const out: string[] = [];
  for (let i = 0; attrs.has(`${name}${i}`); i++) out.push(...readStringAttribute(m, fileId, path, `${name}${i}`, file, fileSize));
  return out;
}

function readStringAttribute(m: H5Module, fileId: bigint, path: string, name: string, file: string, fileSize: number): string[] {
  const md: H5Metadata = m.get_attribute_metadata(fileId, path, name);
  const where = `attribute "${name}" of ${path}`;
  if (md.shape === null || md.total_size === 0) return []; // Keras writes an empty float64 array for "no weights"
  if (md.type !== H5T.STRING) throw new WeightFileError(file, `${where} is not a list of strings (HDF5 type class ${md.type})`);
  if (md.shape.length > 1) throw new WeightFileError(file, `${where} has rank ${md.shape.length}, expected a list`);
  const nbytes = md.size * md.total_size;
  if (!Number.isSafeInteger(nbytes) || nbytes > fileSize)
    throw new WeightFileError(file, `${where} declares ${nbytes} bytes, more than the ${fileSize}-byte file`);
  const ptr = malloc(m, nbytes);
  const decoder = new TextDecoder('utf-8');
  const out: string[] = [];
  try {
    m.get_attribute_data(fileId, path, name, BigInt(ptr));
    if (md.vlen) {
      // Variable-length strings: an array of pointers to NUL-terminated strings owned by HDF5.
      try {
        const ptrs = new Uint32Array(m.HEAPU8.slice(ptr, ptr + nbytes).buffer);
        for (const p of ptrs) out.push(p === 0 ? '' : m.UTF8ToString(p));
      } finally {
        m.reclaim_vlen_memory(fileId, path, name, BigInt(ptr));
      }
    } else {
      const raw = m.HEAPU8.slice(ptr, ptr + nbytes);
      for (let i = 0; i < md.total_size; i++) {
        let slot = raw.subarray(i * md.size, (i + 1) * md.size);
        const nul = slot.indexOf(0);
        if (nul >= 0) slot = slot.subarray(0, nul);
        let s = decoder.decode(slot);
        if (md.strpad === STR_SPACEPAD) s = s.replace(/ +$/, '');
        out.push(s);
      }
    }
  } finally {
    m._free(ptr);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Writes a Keras legacy H5 weight file atomically. */
export async function writeKerasH5(layers: readonly KerasLayer[], path: string, options: KerasH5WriteOptions = {}): Promise<void> {
  const bytes = await encodeKerasH5(layers, options, path);
  await writeFileAtomic(path, bytes);
}

/** The bytes of a Keras legacy H5 weight file holding `layers` in the given order. */
export async function encodeKerasH5(
  layers: readonly KerasLayer[],
  options: KerasH5WriteOptions = {},
  label = '<keras h5>',
): Promise<Uint8Array> {
  validateForWrite(layers, label);
  validateAttributes(options.attributes ?? {}, label);
  const m = await h5Module();
  const memPath = scratchPath();
  let fileId: bigint | null = null;
  try {
    fileId = m.open(memPath, m.H5F_ACC_TRUNC, false, -1, -1);
    if (fileId < 0n) throw new WeightFileError(label, 'HDF5 could not create the file');
    writeStringListAttribute(
      m,
      fileId,
      '/',
      'layer_names',
      layers.map((l) => l.name),
    );
    writeScalarStringAttribute(m, fileId, '/', 'backend', options.backend ?? 'tensorflow');
    writeScalarStringAttribute(m, fileId, '/', 'keras_version', options.kerasVersion ?? '2.15.0');
    for (const [name, value] of Object.entries(options.attributes ?? {})) {
      if (typeof value === 'string') writeScalarStringAttribute(m, fileId, '/', name, value);
      else writeStringListAttribute(m, fileId, '/', name, [...value]);
    }
    for (const layer of layers) {
      const groupPath = `/${layer.name}`;
      m.create_group(fileId, groupPath, false);
      writeStringListAttribute(
        m,
        fileId,
        groupPath,
        'weight_names',
        layer.weights.map((w) => w.name),
      );
      const groups = new Set<string>([groupPath]);
      for (const w of layer.weights) {
        // Weight names are paths ("block1_conv1/kernel:0"); HDF5 does not create the intermediate groups.
        const parts = w.name.split('/');
        let prefix = groupPath;
        for (const part of parts.slice(0, -1)) {
          prefix = `${prefix}/${part}`;
          if (!groups.has(prefix)) {
            m.create_group(fileId, prefix, false);
            groups.add(prefix);
          }
        }
        writeFloatDataset(m, fileId, `${groupPath}/${w.name}`, w);
      }
    }
    m.close_file(fileId);
    fileId = null;
    return m.FS.readFile(memPath);
  } catch (e) {
    if (e instanceof WeightFileError) throw e;
    throw new WeightFileError(label, `writing failed: ${describeH5Failure(e)}`);
  } finally {
    if (fileId !== null && fileId >= 0n) {
      try {
        m.close_file(fileId);
      } catch {
        /* instance may be gone */
      }
    }
    try {
      m.FS.unlink(memPath);
    } catch {
      /* never created */
    }
  }
}

function validateAttributes(attributes: Readonly<Record<string, string | readonly string[]>>, label: string): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || KERAS_ROOT_ATTRIBUTES.includes(name)) {
      throw new WeightFileError(label, `cannot write a root attribute named "${name}" (Keras's own, or not a plain name)`);
    }
    if (typeof value !== 'string' && !(Array.isArray(value) && value.every((v) => typeof v === 'string' && !v.includes('\0')))) {
      throw new WeightFileError(label, `root attribute "${name}" must be a string or a list of strings without NUL characters`);
    }
  }
}

function validateForWrite(layers: readonly KerasLayer[], label: string): void {
  const fail = (problem: string): never => {
    throw new WeightFileError(label, problem);
  };
  const seen = new Set<string>();
  for (const layer of layers) {
    if (typeof layer.name !== 'string' || layer.name.length === 0) fail('a layer has an empty name');
    if (layer.name.includes('/') || layer.name === '.' || layer.name === '..')
      fail(`layer name "${layer.name}" cannot be an HDF5 group name`);
    if (seen.has(layer.name)) fail(`duplicate layer name "${layer.name}"`);
    seen.add(layer.name);
    const names = new Set<string>();
    for (const w of layer.weights) {
      if (typeof w.name !== 'string' || w.name.length === 0) fail(`layer "${layer.name}" has a weight with an empty name`);
      if (w.name.split('/').some((p) => p.length === 0 || p === '.' || p === '..'))
        fail(`layer "${layer.name}": weight name "${w.name}" is not a valid relative HDF5 path`);
      if (names.has(w.name)) fail(`layer "${layer.name}": duplicate weight name "${w.name}"`);
      for (const other of names) {
        if (other.startsWith(`${w.name}/`) || w.name.startsWith(`${other}/`))
          fail(`layer "${layer.name}": weight names "${other}" and "${w.name}" would need "${w.name}" to be both a group and a dataset`);
      }
      names.add(w.name);
      if (!(w.data instanceof Float32Array)) fail(`layer "${layer.name}": weight "${w.name}" data must be a Float32Array`);
      const n = elementCount(w.shape);
      if (n < 0) fail(`layer "${layer.name}": weight "${w.name}" shape ${shapeText(w.shape)} is not a list of non-negative integers`);
      if (n !== w.data.length)
        fail(`layer "${layer.name}": weight "${w.name}" shape ${shapeText(w.shape)} holds ${n} values but data has ${w.data.length}`);
    }
  }
}

function stringMetadata(size: number, count: number, shape: bigint[]): H5WriteMetadata {
  // cset 0 (ASCII) selects h5wasm's H5T_C_S1 base type: fixed-length byte strings, like the numpy
  // `S<n>` arrays Keras stores. HDF5 marks them NULLTERM where h5py writes NULLPAD; h5py, h5dump and
  // Keras read both the same (a full-length string is kept whole). h5wasm cannot set the padding.
  return { type: H5T.STRING, size, cset: 0, vlen: false, signed: false, littleEndian: true, total_size: count, shape, maxshape: shape };
}

function writeStringListAttribute(m: H5Module, fileId: bigint, path: string, name: string, values: string[]): void {
  if (values.length === 0) {
    // What h5py makes of Keras's empty list: a float64 array of length 0.
    const ptr = malloc(m, 8);
    try {
      m.create_attribute(fileId, path, name, BigInt(ptr), {
        type: H5T.FLOAT,
        size: 8,
        vlen: false,
        signed: false,
        littleEndian: true,
        total_size: 0,
        shape: [0n],
        maxshape: [0n],
      });
    } finally {
      m._free(ptr);
    }
    return;
  }
  const encoded = values.map((v) => new TextEncoder().encode(v));
  const size = Math.max(1, ...encoded.map((e) => e.length));
  // Keras's chunking rule (numpy.array_split into the fewest chunks that fit the header limit).
  let chunks = 1;
  while (Math.ceil(encoded.length / chunks) * size > HDF5_OBJECT_HEADER_LIMIT) chunks++;
  if (chunks > encoded.length)
    throw new WeightFileError(path, `attribute "${name}" has a ${size}-byte name, too long for an HDF5 attribute`);
  const base = Math.floor(encoded.length / chunks);
  const extra = encoded.length % chunks;
  let start = 0;
  for (let c = 0; c < chunks; c++) {
    const n = base + (c < extra ? 1 : 0);
    const part = encoded.slice(start, start + n);
    start += n;
    const buf = new Uint8Array(n * size);
    part.forEach((e, i) => buf.set(e, i * size));
    const ptr = malloc(m, buf.length);
    try {
      m.HEAPU8.set(buf, ptr);
      m.create_attribute(fileId, path, chunks === 1 ? name : `${name}${c}`, BigInt(ptr), stringMetadata(size, n, [BigInt(n)]));
    } finally {
      m._free(ptr);
    }
  }
}

function writeScalarStringAttribute(m: H5Module, fileId: bigint, path: string, name: string, value: string): void {
  const encoded = new TextEncoder().encode(value);
  const size = Math.max(1, encoded.length);
  const ptr = malloc(m, size);
  try {
    m.HEAPU8.fill(0, ptr, ptr + size);
    m.HEAPU8.set(encoded, ptr);
    m.create_attribute(fileId, path, name, BigInt(ptr), stringMetadata(size, 1, []));
  } finally {
    m._free(ptr);
  }
}

function writeFloatDataset(m: H5Module, fileId: bigint, path: string, w: NamedWeight): void {
  const bytes = new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
  const ptr = malloc(m, Math.max(4, bytes.length));
  try {
    m.HEAPU8.set(bytes, ptr);
    const shape = w.shape.map((d) => BigInt(d));
    m.create_dataset(fileId, path, BigInt(ptr), {
      type: H5T.FLOAT,
      size: 4,
      vlen: false,
      signed: false,
      littleEndian: true,
      total_size: w.data.length,
      shape,
      maxshape: shape,
      chunks: null,
      compression: 0,
      compression_opts: [],
      track_order: false,
    });
  } finally {
    m._free(ptr);
  }
}
