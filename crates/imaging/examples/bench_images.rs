//! Writes the benchmark inputs: `bench_images DIR [COUNT]` makes COUNT 20-megapixel JPEGs
//! (5472x3648, like a 20 MP camera) and COUNT 12-megapixel PNGs (4000x3000) with different
//! content, for `bench/compare-vips.sh`.

#[path = "../benches/support/photo.rs"]
mod photo;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: bench_images DIR [COUNT]"));
    let count: u64 = args
        .next()
        .map_or(10, |c| c.parse().expect("COUNT is a number"));
    std::fs::create_dir_all(&dir).expect("create DIR");
    for i in 0..count {
        std::fs::write(
            dir.join(format!("photo{i:02}.jpg")),
            photo::photo_jpeg(5472, 3648, i + 1),
        )
        .expect("write jpeg");
        std::fs::write(
            dir.join(format!("photo{i:02}.png")),
            photo::photo_png(4000, 3000, i + 1),
        )
        .expect("write png");
    }
}
