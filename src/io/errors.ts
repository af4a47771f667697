import { XceptionError } from '../core/errors.js';

/**
 * A weight file (safetensors, Keras H5) is unreadable, malformed, or does not fit the model.
 * `file` names the file (a path, or a caller-given label for in-memory bytes) and `problem` says
 * what is wrong with it; the message joins the two.
 */
export class WeightFileError extends XceptionError {
  readonly file: string;
  readonly problem: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.file = file;
    this.problem = problem;
  }
}

/** An ONNX graph under construction is inconsistent (unknown input, duplicate name, bad shape). */
export class OnnxGraphError extends XceptionError {}
