//! `imgd`: a self-hosted image service. See `imgd --help`.

use clap::Parser;

/// mimalloc, asked to return each render's freed pages when it ends: `imgd_alloc` says why.
#[global_allocator]
static ALLOCATOR: imgd_alloc::MiMalloc = imgd_alloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // The HEIF decoder's memory-capped child: before any thread, runtime or config exists.
    #[cfg(feature = "heif")]
    {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.first().map(String::as_str) == Some(imgd_imaging::heif_child::SUBCOMMAND) {
            return imgd_imaging::heif_child::main(&args[1..]);
        }
    }
    let cli = imgd::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("imgd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(imgd::commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imgd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
