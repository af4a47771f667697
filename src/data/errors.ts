import { XceptionError } from '../core/errors.js';

/**
 * A dataset file or folder is missing, unreadable or malformed. `file` names the path at fault
 * (also part of the message) so callers and tests can tell which input was bad.
 */
export class DatasetError extends XceptionError {
  readonly file: string | undefined;

  constructor(message: string, file?: string) {
    super(file !== undefined && !message.includes(file) ? `${file}: ${message}` : message);
    this.file = file;
  }
}

/**
 * An image file is missing, unreadable, undecodable or too large. A DatasetError, so a training
 * run stops on it like on any bad dataset file; `file` names the image.
 */
export class ImageError extends DatasetError {
  declare readonly file: string;

  constructor(file: string, problem: string) {
    super(problem, file);
  }
}
