export * from './activations.js';
export * from './conv.js';
export * from './dropout.js';
export { add, addN, concat, flatten, mul, reshape, scale } from './elementwise.js';
export * from './linalg.js';
export * from './loss.js';
export * from './normalization.js';
export * from './padding.js';
export * from './pooling.js';
