export { compileInference, CompiledInference, type CompileInferenceOptions, type CompiledInferenceInfo } from './compiled.js';
export { CompileError, type PlanLayout, type Precision } from './compile.js';
export { int8Hardware } from './int8-hardware.js';
export { setInferencePrecision, type InferencePrecision } from './auto.js';
export { cachedCompiledInference, compiledFallbackReason, compiledInferenceEnabled, releaseCompiledInference } from './auto.js';
