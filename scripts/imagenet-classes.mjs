#!/usr/bin/env node
// Writes assets/imagenet-classes.json (the 1000 ImageNet class names the package ships) from the
// devDependency @tensorflow-models/mobilenet. Run by `prepack` after the TypeScript build; see
// src/predict/imagenet-classes.ts for the source and licence of the names.
import { writeImagenetClassAsset } from '../dist/src/predict/imagenet-classes.js';

console.log(`xception: wrote ${writeImagenetClassAsset()}`);
