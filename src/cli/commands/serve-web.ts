/**
 * `xception serve-web`: a static server for the browser page (web/), the browser build
 * (dist/src, plain ESM) and the wasm kernels (wasm), plus the Fashion-MNIST IDX files for
 * training in the page. Every response is cross-origin isolated (COOP same-origin + COEP
 * require-corp) so the page may use SharedArrayBuffer, which wasm threads need.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OptionError } from '../../core/errors.js';
import { firstExisting } from '../../data/files.js';
import { FASHION_MNIST_DIR, idxFileCandidates } from '../../data/idx.js';
import { intFlag, parse } from '../args.js';

export const SERVE_WEB_HELP = `Usage: xception serve-web [options]

Serves the browser page: classify an image with a weights file, train the small Xception on
Fashion-MNIST in the page, download the weights (loadable by \`xception predict --weights\`).
Open the printed address in a browser; Ctrl-C stops the server.

  --port N        port to listen on (default 8080; 0 picks a free one)
  --host ADDR     address to listen on (default 127.0.0.1, this machine only)
  --data DIR      folder with the Fashion-MNIST IDX files (default ${FASHION_MNIST_DIR})
  -h, --help      this help

Responses carry Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy:
require-corp (cross-origin isolation, which WebAssembly threads need).
`;

/** dist/src/cli/commands/serve-web.js → the package root. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** URL prefixes served, each from a folder of the package (nothing else is reachable). */
const STATIC_ROOTS: Record<string, string> = {
  '/web/': 'web',
  '/dist/src/': join('dist', 'src'),
  '/wasm/': 'wasm',
};

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
} as const;

export interface WebServerOptions {
  port?: number;
  host?: string;
  /** Folder of the Fashion-MNIST IDX files (default FASHION_MNIST_DIR). */
  dataDir?: string;
  /** Package root to serve web/, dist/src/ and wasm/ from (default: this package). */
  root?: string;
  /** More URL prefixes → absolute folders (the wasm benchmark serves its peers' files from node_modules). */
  extraRoots?: Record<string, string>;
}

export interface WebServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Starts the server; OptionError when the port is taken or the address cannot be used. */
export async function startWebServer(options: WebServerOptions = {}): Promise<WebServer> {
  const port = options.port ?? 8080;
  const host = options.host ?? '127.0.0.1';
  const root = resolve(options.root ?? PACKAGE_ROOT);
  const dataDir = options.dataDir ?? FASHION_MNIST_DIR;
  const roots = { ...STATIC_ROOTS, ...options.extraRoots };
  const server = createServer((req, res) => {
    handle(req, res, root, dataDir, roots).catch(() => send(res, 500, 'internal error'));
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => fail(listenError(e, host, port)));
    server.listen(port, host, () => ok());
  });
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    url: `http://${shownHost}:${actualPort}/`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

function listenError(e: NodeJS.ErrnoException, host: string, port: number): Error {
  if (e.code === 'EADDRINUSE') return new OptionError(`serve-web: port ${port} on ${host} is already in use: choose another with --port`);
  if (e.code === 'EACCES') return new OptionError(`serve-web: not allowed to listen on ${host}:${port} (ports below 1024 need privileges)`);
  if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND')
    return new OptionError(`serve-web: --host ${host} is not an address of this machine`);
  return new OptionError(`serve-web: cannot listen on ${host}:${port} (${e.message})`);
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  dataDir: string,
  roots: Record<string, string>,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'only GET and HEAD');
  let path: string;
  let search: string;
  try {
    const url = new URL(req.url ?? '/', 'http://x');
    path = decodeURIComponent(url.pathname);
    search = url.search;
  } catch {
    return send(res, 400, 'bad path');
  }
  if (path === '/' || path === '/index.html') {
    // The page's options (?backend=…, ?wasm-memory-mb=…) go with it.
    res.writeHead(302, { ...ISOLATION_HEADERS, Location: `/web/index.html${search}` });
    res.end();
    return;
  }
  const file = path.startsWith('/data/fashion-mnist/') ? await datasetFile(path, dataDir) : staticFile(path, root, roots);
  if (!file) return send(res, 404, 'not found');
  await sendFile(req, res, file);
}

/** The file under one of the served roots that `path` names, or null (no escaping the folder). */
function staticFile(path: string, root: string, roots: Record<string, string>): string | null {
  for (const [prefix, folder] of Object.entries(roots)) {
    if (!path.startsWith(prefix)) continue;
    const base = isAbsolute(folder) ? folder : join(root, folder);
    const file = normalize(join(base, path.slice(prefix.length)));
    return file.startsWith(base + sep) ? file : null;
  }
  return null;
}

/** /data/fashion-mnist/{train,test}-{images,labels} → the IDX file (gzip or not) in dataDir. */
async function datasetFile(path: string, dataDir: string): Promise<string | null> {
  const m = /^\/data\/fashion-mnist\/(train|test)-(images|labels)$/.exec(path);
  if (!m) return null;
  const candidates = idxFileCandidates(dataDir, m[1] as 'train' | 'test');
  return (await firstExisting(m[2] === 'images' ? candidates.images : candidates.labels)) ?? null;
}

async function sendFile(req: IncomingMessage, res: ServerResponse, file: string): Promise<void> {
  const info = await stat(file).catch(() => null);
  if (!info?.isFile()) return send(res, 404, 'not found');
  res.writeHead(200, {
    ...ISOLATION_HEADERS,
    'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
    'Content-Length': info.size,
    'Cache-Control': 'no-cache',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

function send(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { ...ISOLATION_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

export async function serveWebCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('serve-web', argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (p.values['help']) {
    out(SERVE_WEB_HELP);
    return 0;
  }
  const port = intFlag('port', p.values['port'], 0, 65535) ?? 8080;
  const host = (p.values['host'] as string | undefined) ?? '127.0.0.1';
  if (host.trim() === '') throw new OptionError('serve-web: --host needs an address');
  const dataDir = p.values['data'] as string | undefined;
  const web = await startWebServer({ port, host, ...(dataDir !== undefined ? { dataDir } : {}) });
  out(`xception serve-web: serving ${web.url} (Ctrl-C stops)\n`);
  const signal = await stopSignal();
  await web.close();
  out(`xception serve-web: ${signal}: stopped\n`);
  return 0;
}

/** Resolves with the first SIGINT or SIGTERM (the server runs until then). */
function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((ok) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      ok(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
