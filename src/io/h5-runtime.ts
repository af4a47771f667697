/**
 * The HDF5 library, compiled to WebAssembly by h5wasm, driven through its low-level bindings.
 *
 * Why not h5wasm's high-level `File`/`Group` classes: they share one module instance for the
 * whole process, read host files through NODERAWFS (the `h5wasm/node` build), and call into HDF5
 * without checking sizes first. Here every file lives in the instance's in-memory file system
 * (MEMFS), sizes are checked in TypeScript before HDF5 allocates anything, and an instance that
 * trapped (a WebAssembly.RuntimeError, e.g. an emscripten abort or an out-of-bounds access while
 * parsing a corrupt file) is thrown away and replaced by a fresh one, so one bad file cannot poison
 * later reads.
 *
 * h5wasm's "throwing error handler" is switched on: HDF5 reports errors when an API call returns,
 * after it has released its own API context, and the handler turns the HDF5 error stack into a JS
 * exception there. The C++ glue of h5wasm may leak a few HDF5 ids on that path, so the instance is
 * also recycled after a number of such errors.
 */

/** The part of h5wasm's emscripten module this project uses (see h5wasm/src/hdf5_util_helpers.d.ts). */
export interface H5Metadata {
  type: number;
  size: number;
  signed: boolean;
  littleEndian: boolean;
  vlen: boolean;
  cset?: number;
  strpad?: number;
  shape: number[] | null;
  maxshape: number[] | null;
  chunks: number[] | null;
  total_size: number;
}

export interface H5WriteMetadata {
  type: number;
  size: number;
  signed: boolean;
  littleEndian: boolean;
  vlen: boolean;
  cset?: number;
  total_size: number;
  shape: bigint[];
  maxshape: bigint[];
  chunks?: null;
  compression?: number;
  compression_opts?: number[];
  track_order?: boolean;
}

export interface H5Module {
  HEAPU8: Uint8Array;
  FS: {
    writeFile(path: string, data: Uint8Array): void;
    readFile(path: string): Uint8Array;
    unlink(path: string): void;
    mkdir(path: string): void;
    analyzePath(path: string): { exists: boolean };
  };
  _malloc(n: number): number;
  _free(ptr: number): void;
  UTF8ToString(ptr: number): string;
  open(filename: string, mode: number, trackOrder: boolean, libverLow: number, libverHigh: number): bigint;
  close_file(fileId: bigint): number;
  get_type(fileId: bigint, path: string): number;
  get_names(fileId: bigint, path: string, recursive: boolean): string[];
  get_attribute_names(fileId: bigint, path: string): string[];
  get_attribute_metadata(fileId: bigint, path: string, name: string): H5Metadata;
  get_attribute_data(fileId: bigint, path: string, name: string, ptr: bigint): number;
  reclaim_vlen_memory(fileId: bigint, path: string, attrName: string, ptr: bigint): number;
  get_dataset_metadata(fileId: bigint, path: string): H5Metadata;
  get_dataset_filters(fileId: bigint, path: string): { id: number; name: string }[];
  get_dataset_data(fileId: bigint, path: string, count: null, offset: null, strides: null, ptr: bigint): number;
  create_group(fileId: bigint, path: string, trackOrder: boolean): number;
  create_attribute(fileId: bigint, path: string, name: string, ptr: bigint, metadata: H5WriteMetadata): number;
  create_dataset(fileId: bigint, path: string, ptr: bigint, metadata: H5WriteMetadata): number;
  activate_throwing_error_handler(): number;
  H5F_ACC_RDONLY: number;
  H5F_ACC_TRUNC: number;
  H5G_GROUP: number;
  H5G_DATASET: number;
}

/** HDF5 type classes (H5T_class_t). */
export const H5T = { INTEGER: 0, FLOAT: 1, STRING: 3 } as const;

/** HDF5 errors tolerated on one instance before it is replaced (each may leak a few ids). */
const MAX_ERRORS_PER_INSTANCE = 32;

let current: Promise<H5Module> | null = null;
let errorsOnCurrent = 0;
let fileCounter = 0;

type Factory = (options: Record<string, unknown>) => Promise<H5Module>;
let factoryPromise: Promise<Factory> | null = null;

async function loadFactory(): Promise<Factory> {
  // h5wasm's package exports only its high-level wrapper, which would instantiate a module of its
  // own on import; the emscripten factory sits next to it in the same directory.
  const hl = import.meta.resolve('h5wasm');
  const mod = (await import(new URL('./hdf5_util.js', hl).href)) as { default: Factory };
  return mod.default;
}

/**
 * Upper bound (bytes) for the wasm heap while a read is in progress; Infinity otherwise.
 *
 * HDF5 trusts sizes found in the file's metadata: a corrupt local heap or B-tree node can make it
 * allocate a gigabyte before it notices the address lies past the end of the file (seen in
 * fuzzing). The emscripten glue grows the wasm memory through the imported function
 * `env.emscripten_resize_heap`; wrapping that import lets us refuse growth past the limit, so the
 * allocation fails inside HDF5 (malloc returns NULL, HDF5 reports an error) instead of succeeding.
 */
let heapLimit = Infinity;

/** Runs `fn` with the wasm heap allowed to grow by at most `extraBytes` beyond its current size. */
export function withHeapLimit<T>(m: H5Module, extraBytes: number, fn: () => T): T {
  const saved = heapLimit;
  heapLimit = m.HEAPU8.length + extraBytes;
  try {
    return fn();
  } finally {
    heapLimit = saved;
  }
}

let compiled: WebAssembly.Module | null = null;

type Instantiate = (source: unknown, imports?: WebAssembly.Imports) => Promise<unknown>;

async function instantiate(): Promise<H5Module> {
  factoryPromise ??= loadFactory();
  const factory = await factoryPromise;
  // The glue instantiates its embedded binary with WebAssembly.instantiate(bytes, imports). For the
  // duration of that call, intercept it to (1) wrap the heap-growth import and (2) compile the
  // binary once and reuse the compiled module when an instance has to be replaced.
  const wasm = WebAssembly as unknown as { instantiate: Instantiate };
  const original = wasm.instantiate;
  wasm.instantiate = async (source: unknown, imports?: WebAssembly.Imports) => {
    const env = imports?.env as Record<string, unknown> | undefined;
    const grow = env?.emscripten_resize_heap;
    if (env && typeof grow === 'function') {
      env.emscripten_resize_heap = (requested: number) => (requested >>> 0 > heapLimit ? 0 : (grow as (n: number) => number)(requested));
    }
    if (source instanceof WebAssembly.Module) return original.call(WebAssembly, source, imports);
    compiled ??= await WebAssembly.compile(source as BufferSource);
    const instance = await original.call(WebAssembly, compiled, imports);
    return { module: compiled, instance };
  };
  let m: H5Module;
  try {
    m = await factory({ noInitialRun: true, print: () => undefined, printErr: () => undefined });
  } finally {
    wasm.instantiate = original;
  }
  m.activate_throwing_error_handler();
  if (!m.FS.analyzePath('/xception').exists) m.FS.mkdir('/xception');
  return m;
}

export async function h5Module(): Promise<H5Module> {
  if (current === null) {
    errorsOnCurrent = 0;
    current = instantiate();
    current.catch(() => {
      current = null;
    });
  }
  return current;
}

/** Marks the current instance unusable (after a trap) so the next call gets a fresh one. */
function discard(): void {
  current = null;
}

/** A fresh path in the instance's in-memory file system. */
export function scratchPath(): string {
  fileCounter += 1;
  return `/xception/f${fileCounter}.h5`;
}

/**
 * Turns whatever HDF5/emscripten threw into a one-line description and decides whether the
 * instance survives: traps (WebAssembly.RuntimeError) and errors that are not from HDF5's error
 * stack retire it.
 */
export function describeH5Failure(err: unknown): string {
  const trapped =
    err instanceof WebAssembly.RuntimeError ||
    (err instanceof Error && /Aborted\(|unreachable|memory access out of bounds/.test(err.message));
  if (trapped) {
    discard();
    return `the HDF5 library failed while reading it (${firstLine(err)}); the file is corrupt`;
  }
  errorsOnCurrent += 1;
  if (errorsOnCurrent >= MAX_ERRORS_PER_INSTANCE) discard();
  const text = err instanceof Error ? err.message : String(err);
  if (text.startsWith('HDF5-DIAG')) return `HDF5 error: ${summarizeHdf5Stack(text)}`;
  return firstLine(err);
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.slice(0, 300);
}

/** HDF5 prints its error stack outermost call first; the innermost "in F(): why" is the cause. */
function summarizeHdf5Stack(text: string): string {
  const frames = [...text.matchAll(/ in (\w+)\(\): ([^\n]+)/g)].map((m) => `${m[1]}: ${m[2]!.trim()}`);
  if (frames.length === 0) return firstLine(text);
  const outer = frames[0]!;
  const inner = frames[frames.length - 1]!;
  return frames.length === 1 ? outer : `${outer} (cause: ${inner})`;
}
