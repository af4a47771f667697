/** Node's SHA-256 (node:crypto, native) for the safetensors checksum; the browser keeps the plain one. */
import { createHash } from 'node:crypto';
import { setSha256Implementation } from './sha256.js';

export function useNodeSha256(): void {
  setSha256Implementation(() => createHash('sha256'));
}
