/**
 * One image file → HWC uint8 pixels of a model's input shape, as an ImagePreprocessing says: the
 * single definition training, evaluation and prediction all read image files with.
 *
 * Steps: sharp decodes the file on a libuv worker thread (EXIF orientation applied, alpha dropped,
 * RGB); a source box is chosen — the whole image ('stretch', Keras's load_img), the centred box of
 * the target's aspect ratio ('center-crop': shorter side to the target), or the augmentation's
 * crop; the box is converted to grey if one channel is wanted (Pillow's convert('L')), resized to
 * the target with Pillow's arithmetic (resize-pil.ts: the same filters in every policy, and
 * Keras-exact for 'stretch'), then mirrored if the augmentation says so.
 *
 * Scaling to network inputs (preprocessingAffine) is left to the caller, so a batch loader can
 * write float32 straight into its batch.
 */
import { OptionError, ShapeError, XceptionError } from '../core/errors.js';
import { stat } from 'node:fs/promises';
import { ImageError } from './errors.js';
import type { ImagePreprocessing } from './image-preprocessing.js';
import { shapePixels, type DecodedRgb, type ImageAugment } from './image-pixels.js';

export { ImageError } from './errors.js';
export { centerCropBox, type DecodedRgb, type ImageAugment } from './image-pixels.js';

/**
 * Images whose header declares more pixels than this are refused before any pixel is decoded
 * (a 100-megapixel photo decodes to 300 MB; a hostile header can claim far more).
 */
export const MAX_IMAGE_PIXELS = 100_000_000;

export interface ImageReadOptions {
  /** Refuse images whose header declares more pixels than this (default MAX_IMAGE_PIXELS). */
  maxPixels?: number;
}

type SharpFactory = typeof import('sharp').default;
let sharpFactory: SharpFactory | null = null;

export async function loadSharp(): Promise<SharpFactory> {
  if (sharpFactory) return sharpFactory;
  try {
    sharpFactory = (await import('sharp')).default;
    return sharpFactory;
  } catch (e) {
    throw new XceptionError(
      `decoding images needs the 'sharp' package, which failed to load (${(e as Error).message}); run \`npm install sharp\``,
    );
  }
}

/** Why a file sharp could not open is bad, in words a user can act on. */
async function describeUnreadable(file: string, sharpMessage: string, maxPixels: number): Promise<string> {
  try {
    const st = await stat(file);
    if (st.isDirectory()) return 'is a directory, not an image';
    if (!st.isFile()) return 'is not a regular file';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'no such file' : `cannot read file (${(e as Error).message})`;
  }
  if (/pixel limit/i.test(sharpMessage)) {
    return `image is larger than ${maxPixels.toLocaleString('en-US')} pixels; shrink it before use`;
  }
  return `not a readable image (JPEG, PNG, WebP, …): ${sharpMessage}`;
}

/** Full-size RGB pixels of `file`, upright (EXIF orientation applied), alpha dropped. */
async function decodeRgb(file: string, maxPixels: number): Promise<DecodedRgb> {
  const sharp = await loadSharp();
  let decoded: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    decoded = await sharp(file, { failOn: 'error', limitInputPixels: maxPixels })
      .rotate() // EXIF orientation: photos from phones are stored sideways
      .removeAlpha()
      .toColourspace('srgb') // greys expanded, palettes applied, CMYK converted
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new ImageError(file, await describeUnreadable(file, (e as Error).message, maxPixels));
  }
  const { data, info } = decoded;
  if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
    throw new ImageError(file, `decoded to ${info.width}×${info.height}×${info.channels} (${data.length} bytes), expected RGB`);
  }
  return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), height: info.height, width: info.width };
}

/**
 * Reads `file` as HWC uint8 pixels of `shape` ([height, width, 1 or 3]) following `prep`'s resize
 * policy and interpolation (not its scaling), with optional augmentation. Throws ImageError naming
 * the file when it is missing, unreadable, not an image, or its header declares more than
 * `options.maxPixels` pixels (MAX_IMAGE_PIXELS by default; refused before decoding).
 */
let defaultMaxPixels = MAX_IMAGE_PIXELS;

/** Sets the pixel limit readImagePixels applies when its caller gives none (the CLI's --max-image-pixels). */
export function setDefaultImagePixelLimit(pixels: number): void {
  if (!Number.isSafeInteger(pixels) || pixels < 1) throw new OptionError(`the image pixel limit must be a positive integer, got ${pixels}`);
  defaultMaxPixels = pixels;
}

export async function readImagePixels(
  file: string,
  shape: readonly [number, number, number],
  prep: ImagePreprocessing,
  augment?: ImageAugment,
  options: ImageReadOptions = {},
): Promise<Uint8Array> {
  const maxPixels = options.maxPixels ?? defaultMaxPixels;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) throw new OptionError(`maxPixels must be a positive integer, got ${maxPixels}`);
  const [height, width, channels] = shape;
  if (channels !== 1 && channels !== 3) throw new ShapeError(`images can be loaded with 1 or 3 channels, not ${channels}`);
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new ShapeError(`image size must be positive integers, got ${height}×${width}`);
  }
  return shapePixels(await decodeRgb(file, maxPixels), [height, width, channels], prep, augment);
}
