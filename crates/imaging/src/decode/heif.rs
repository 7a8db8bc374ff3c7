//! AVIF and HEIC, decoded by libheif in a child process ([`crate::heif_child`]) whose memory is
//! capped before it reads the file; this side feeds it, reads the pixels back, and kills it when
//! the job is cancelled or late (libheif has no way to stop a decode from inside).
//!
//! Spawning costs a few milliseconds against the hundreds a 12 MP HEIC takes to decode.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use image::{DynamicImage, RgbImage, RgbaImage};
use imgd_core::port::JobControl;
use imgd_core::{Error, Result};

use super::{Decoded, MAX_ICC_BYTES, corrupt};
use crate::heif_child::{EXIT_BAD_FILE, SUBCOMMAND};
use crate::probe::Probe;

/// This build decodes AVIF and HEIC.
pub const HEIF_SUPPORTED: bool = true;

/// Fixed memory the child may use beyond what the pixels need: the binary's allocations,
/// libheif's and the codec's tables, a worker thread's stack (measured: a 640x480 HEIC needs
/// 72-96 MiB, a 16 MP one 192-256 MiB, so about 10 bytes a pixel on top).
const CHILD_OVERHEAD: u64 = 128 << 20;

/// How often the parent looks at the job while the child works.
const POLL: Duration = Duration::from_millis(2);

static HELPER: OnceLock<PathBuf> = OnceLock::new();

/// The executable that answers [`SUBCOMMAND`]; by default this process's own (the `imgd`
/// binary dispatches it before anything else starts).
pub fn set_helper(path: PathBuf) {
    let _ = HELPER.set(path);
}

fn helper() -> Result<PathBuf> {
    match HELPER.get() {
        Some(path) => Ok(path.clone()),
        None => std::env::current_exe()
            .map_err(|e| Error::internal(format!("cannot find the imgd binary: {e}"))),
    }
}

/// Bytes the child may hold: the coded file, libheif's planes and conversion buffers (up to
/// 16-bit 4:4:4 for a 10-bit source) and the 8-bit output, with room to spare.
pub(super) fn child_memory(width: u32, height: u32, file_bytes: usize) -> u64 {
    u64::from(width) * u64::from(height) * 16 + file_bytes as u64 + CHILD_OVERHEAD
}

/// What the child holds resident per pixel at its peak (measured on 16.7 MP files, debug
/// build: HEIC 138 MB, AVIF 166 MB, so 8.3 and 9.9 bytes a pixel with the fixed part).
const CHILD_RESIDENT_PER_PIXEL: u64 = 10;

/// What the child holds resident whatever the size (a 640x480 HEIC: 19 MB in all).
const CHILD_RESIDENT_FIXED: u64 = 24 << 20;

/// Bytes resident at the peak, for the memory budget: the child's (not its cap, which counts
/// address space it never touches) and this side's copy of the pixels. A 12 MP phone photo
/// comes to about 200 MB, within the default budget of 256 MiB; a 48 MP one does not fit it.
pub(super) fn peak_bytes(width: u32, height: u32, file_bytes: u64) -> u64 {
    let pixels = u64::from(width) * u64::from(height);
    pixels * (CHILD_RESIDENT_PER_PIXEL + 4) + CHILD_RESIDENT_FIXED + file_bytes
}

pub(super) fn decode(bytes: &[u8], probe: &Probe, job: &JobControl) -> Result<Decoded> {
    // No pixel check here: the callers checked this very size (too_many_pixels), and the
    // child's cap is what holds the file to it.
    let (width, height) = (probe.width, probe.height);
    let memory = child_memory(width, height, bytes.len());
    let mut child = Command::new(helper()?)
        .arg(SUBCOMMAND)
        .args([width, height].map(|n| n.to_string()))
        .args([bytes.len() as u64, memory].map(|n| n.to_string()))
        .env_clear()
        // mimalloc (imgd's allocator) reserves 1 GiB of address space for its first arena, and
        // the data-segment cap counts reservations: with it every decode failed. 16 MiB arenas
        // fit under the cap with room for the pixels.
        .env("MIMALLOC_ARENA_RESERVE", "16MiB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::internal(format!("cannot start the HEIF decoder: {e}")))?;
    let (mut stdin, mut stdout, mut stderr) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take());
    std::thread::scope(|scope| {
        // A child that died early closes its end: the write fails and is ignored.
        scope.spawn(move || stdin.as_mut().map(|s| s.write_all(bytes)));
        let pixels = scope.spawn(move || read_pixels(stdout.as_mut()?, (width, height)));
        let reason = scope.spawn(move || {
            let mut text = String::new();
            stderr.as_mut()?.take(4096).read_to_string(&mut text).ok()?;
            Some(text.trim().to_string())
        });
        let status = wait(&mut child, job)?;
        let pixels = pixels.join().ok().flatten();
        let reason = reason.join().ok().flatten().unwrap_or_default();
        match (status.success(), pixels) {
            (true, Some(decoded)) => Ok(decoded),
            _ if status.code() == Some(i32::from(EXIT_BAD_FILE)) => Err(corrupt(reason)),
            _ => Err(corrupt(format!(
                "the HEIF decoder stopped ({status}): the file needs more memory than its \
                 header's size allows, or is malformed"
            ))),
        }
    })
}

/// Waits for the child, killing it as soon as the job should stop.
fn wait(child: &mut Child, job: &JobControl) -> Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().map_err(Error::internal)? {
            return Ok(status);
        }
        if let Err(stop) = job.checkpoint() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(stop);
        }
        std::thread::sleep(POLL);
    }
}

/// Reads the child's answer; `None` on anything but a whole image no larger than `expected`.
fn read_pixels(out: &mut impl Read, expected: (u32, u32)) -> Option<Decoded> {
    let mut header = [0u8; 13];
    out.read_exact(&mut header).ok()?;
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or_default());
    let (width, height, channels, icc_len) = (word(0), word(4), header[8], word(9) as usize);
    if (width, height) != expected || !matches!(channels, 3 | 4) || icc_len > MAX_ICC_BYTES * 4 {
        return None;
    }
    let mut icc = vec![0; icc_len];
    out.read_exact(&mut icc).ok()?;
    let mut pixels = vec![0; width as usize * height as usize * usize::from(channels)];
    out.read_exact(&mut pixels).ok()?;
    let image = if channels == 4 {
        DynamicImage::ImageRgba8(RgbaImage::from_raw(width, height, pixels)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, pixels)?)
    };
    Some(Decoded {
        image,
        icc: (!icc.is_empty()).then_some(icc),
    })
}
