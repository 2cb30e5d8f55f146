// Writes FILE.gz next to FILE with zopfli (npm's @gfx/zopfli): a gzip file
// any browser reads, about 5% smaller than `gzip -9`, for the browser bundle
// every phone in the audience downloads. Used by scripts/build-ui.sh.
//   node zopfli-gzip.js FILE...
'use strict';
const fs = require('fs');
const { gzip } = require('@gfx/zopfli');

for (const file of process.argv.slice(2)) {
  const data = fs.readFileSync(file);
  gzip(data, { numiterations: 15 }, (err, out) => {
    if (err) {
      console.error(`${file}: ${err}`);
      process.exitCode = 1;
      return;
    }
    fs.writeFileSync(`${file}.gz`, out);
  });
}
