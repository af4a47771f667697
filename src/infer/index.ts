export { compileInference, CompiledInference, type CompileInferenceOptions, type CompiledInferenceInfo } from './compiled.js';
export { CompileError, type PlanLayout, type Precision } from './compile.js';
export { cachedCompiledInference, compiledFallbackReason, compiledInferenceEnabled, releaseCompiledInference } from './auto.js';
