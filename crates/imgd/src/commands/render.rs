//! `imgd render`: the server's exact pipeline on local files, `render.workers` at a time (the
//! same concurrency the server's render pool allows).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use imgd_core::port::{Imaging, JobControl};
use imgd_core::service::render_plan::resolve_render;
use imgd_core::transform::{Accepts, TransformSpec};
use imgd_imaging::Pipeline;
use imgd_imaging::probe::probe;

use crate::cli::RenderArgs;
use crate::config::Config;

/// Renders every input into `args.out`; the first failure is reported after the rest finish.
pub fn run(config: &Config, args: &RenderArgs) -> Result<()> {
    let spec = TransformSpec::parse(
        &args.options,
        &config.presets()?,
        &config.transform_limits(),
    )?;
    let pipeline = Pipeline::new(config.pipeline_settings());
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let next = AtomicUsize::new(0);
    let workers = args
        .jobs
        .unwrap_or_else(|| config.render_workers())
        .min(args.inputs.len())
        .max(1);
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    // One input buffer per worker, reused: a fresh 10+ MB allocation per file
                    // would push glibc's dynamic mmap threshold up and keep freed buffers resident.
                    let mut bytes = Vec::new();
                    while let Some(input) = args.inputs.get(next.fetch_add(1, Ordering::SeqCst)) {
                        render_one(config, &pipeline, &spec, input, &args.out, &mut bytes)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a render thread panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

fn render_one(
    config: &Config,
    pipeline: &Pipeline,
    spec: &TransformSpec,
    input: &Path,
    out_dir: &Path,
    bytes: &mut Vec<u8>,
) -> Result<()> {
    use std::io::Read;
    bytes.clear();
    std::fs::File::open(input)
        .and_then(|mut f| f.read_to_end(bytes))
        .with_context(|| format!("reading {}", input.display()))?;
    let bytes = &bytes[..];
    let source = probe(bytes).with_context(|| format!("probing {}", input.display()))?;
    let facts = source.facts(bytes.len() as u64);
    let resolved = resolve_render(
        pipeline,
        &facts,
        spec,
        Accepts::default(),
        &config.quality_defaults(),
    );
    let deadline = Instant::now() + Duration::from_secs(config.render.timeout_secs);
    let rendered = pipeline
        .render(bytes, &resolved.spec, &JobControl::new(deadline, None))
        .with_context(|| format!("rendering {}", input.display()))?;
    let stem = input
        .file_stem()
        .map_or_else(|| "out".into(), |s| s.to_string_lossy().into_owned());
    let out = out_dir.join(format!("{stem}.{}", rendered.format.name()));
    std::fs::write(&out, &rendered.bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
