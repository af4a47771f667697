#!/usr/bin/env node
// The `xception` command; the code lives in dist/ (built by `npm run build` / on install).
import('../dist/src/cli/main.js')
  .then((m) => m.main(process.argv.slice(2)))
  .then((code) => {
    process.exitCode = code;
  })
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
      process.stderr.write('xception: the package is not built; run `npm run build` in its folder\n');
    } else {
      process.stderr.write(`${err?.stack ? err.stack : err}\n`);
    }
    process.exitCode = 1;
  });
