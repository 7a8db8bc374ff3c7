// Renders one animation with sharp, every frame kept (`animated: true`), on one thread: the
// reference for bench/compare-animated.sh. Usage: node sharp-animated.js FILE WIDTH FORMAT OUT
// (WIDTH 0 keeps the size; FORMAT webp at q80, or gif).
const sharp = require(process.env.SHARP_MODULE || 'sharp');

sharp.concurrency(1);
sharp.cache(false);

async function main() {
  const [file, width, format, out] = process.argv.slice(2);
  let pipeline = sharp(file, { animated: true });
  if (width !== '0') pipeline = pipeline.resize({ width: Number(width) });
  pipeline = format === 'gif' ? pipeline.gif() : pipeline.webp({ quality: 80 });
  await pipeline.toFile(out);
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
