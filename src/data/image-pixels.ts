/**
 * Decoded RGB pixels to a model's input pixels: crop (centre or augmentation), channels (RGB or
 * Pillow's grey), resize like Pillow, flip. No Node built-ins: Node feeds it sharp's decode, the
 * browser a canvas's, so both give the same pixels for the same decoded image.
 */
import { ShapeError } from '../core/errors.js';
import { resizeLikePil } from '../predict/resize-pil.js';
import type { ImagePreprocessing } from './image-preprocessing.js';
import type { CropBox } from './transforms.js';

/** Random augmentation of one image, decided by the caller (its own seeded Random). */
export interface ImageAugment {
  /** Picks the box to keep, at source resolution (after EXIF orientation); it is resized to the target. */
  crop?: (srcHeight: number, srcWidth: number) => CropBox;
  /** Mirror left–right after resizing. */
  flip?: boolean;
}

/** A decoded image: RGB, row-major. */
export interface DecodedRgb {
  rgb: Uint8Array;
  height: number;
  width: number;
}

/** The centred box with the target's aspect ratio: scaling it to the target fits the shorter side. */
export function centerCropBox(height: number, width: number, targetHeight: number, targetWidth: number): CropBox {
  if (width * targetHeight > height * targetWidth) {
    const w = Math.max(1, Math.round((height * targetWidth) / targetHeight));
    return { y: 0, x: Math.floor((width - w) / 2), height, width: w };
  }
  const h = Math.max(1, Math.round((width * targetHeight) / targetWidth));
  return { y: Math.floor((height - h) / 2), x: 0, height: h, width };
}

function checkBox(box: CropBox, height: number, width: number): void {
  const ok =
    [box.y, box.x, box.height, box.width].every(Number.isInteger) &&
    box.y >= 0 &&
    box.x >= 0 &&
    box.height >= 1 &&
    box.width >= 1 &&
    box.y + box.height <= height &&
    box.x + box.width <= width;
  if (!ok) throw new ShapeError(`crop box ${JSON.stringify(box)} is not an integer box inside the ${height}×${width} image`);
}

/**
 * The box's pixels with `channels` channels: RGB copied, or grey as Pillow's convert('L') computes
 * it (ITU-R 601-2 luma in 16-bit fixed point). Converting per pixel commutes with cropping.
 */
function cropChannels(img: DecodedRgb, box: CropBox, channels: 1 | 3): Uint8Array {
  if (channels === 3 && box.height === img.height && box.width === img.width) return img.rgb;
  const out = new Uint8Array(box.height * box.width * channels);
  for (let y = 0; y < box.height; y++) {
    const from = ((box.y + y) * img.width + box.x) * 3;
    if (channels === 3) {
      out.set(img.rgb.subarray(from, from + box.width * 3), y * box.width * 3);
      continue;
    }
    const rgb = img.rgb;
    for (let x = 0, i = from, o = y * box.width; x < box.width; x++, i += 3, o++) {
      out[o] = (rgb[i]! * 19595 + rgb[i + 1]! * 38470 + rgb[i + 2]! * 7471 + 0x8000) >> 16;
    }
  }
  return out;
}

/** Mirrors HWC pixels left–right in place. */
function flipRows(px: Uint8Array, height: number, width: number, channels: number): void {
  for (let y = 0; y < height; y++) {
    for (let l = y * width, r = l + width - 1; l < r; l++, r--) {
      for (let c = 0; c < channels; c++) {
        const a = l * channels + c,
          b = r * channels + c;
        const t = px[a]!;
        px[a] = px[b]!;
        px[b] = t;
      }
    }
  }
}

/** HWC uint8 pixels of `shape` from a decoded image, per `prep`'s resize policy and interpolation. */
export function shapePixels(
  img: DecodedRgb,
  shape: readonly [number, number, 1 | 3],
  prep: Pick<ImagePreprocessing, 'resize' | 'interpolation'>,
  augment?: ImageAugment,
): Uint8Array {
  const [height, width, channels] = shape;
  let box: CropBox;
  if (augment?.crop) box = augment.crop(img.height, img.width);
  else if (prep.resize === 'center-crop') box = centerCropBox(img.height, img.width, height, width);
  else box = { y: 0, x: 0, height: img.height, width: img.width };
  checkBox(box, img.height, img.width);
  const cropped = cropChannels(img, box, channels);
  const out = resizeLikePil(cropped, box.height, box.width, channels, height, width, prep.interpolation);
  if (augment?.flip) flipRows(out, height, width, channels);
  return out;
}
