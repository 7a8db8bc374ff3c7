//! Compiles the C shim against the libjpeg-turbo (mozjpeg) headers that mozjpeg-sys built.

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    let include = std::env::var_os("DEP_JPEG_INCLUDE").expect("mozjpeg-sys exports its headers");
    let mut build = cc::Build::new();
    for dir in std::env::split_paths(&include) {
        build.include(dir);
    }
    build
        .file("csrc/shim.c")
        .warnings(true)
        .compile("imgd_jpeg_shim");
}
