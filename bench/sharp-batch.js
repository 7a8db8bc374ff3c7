// Renders each input to a 400 px wide JPEG q80 with sharp, one file after another, on one
// thread: the reference for bench/compare-sharp.sh. Usage: node sharp-batch.js OUT_DIR FILE...
const path = require('path');
const sharp = require(process.env.SHARP_MODULE || 'sharp');

sharp.concurrency(1);
sharp.cache(false);

async function main() {
  const [out, ...files] = process.argv.slice(2);
  for (const file of files) {
    const name = path.basename(file).replace(/\.[^.]+$/, '.jpg');
    await sharp(file).resize({ width: 400 }).jpeg({ quality: 80 }).toFile(path.join(out, name));
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
