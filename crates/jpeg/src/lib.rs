//! imgd-jpeg: libjpeg-turbo's decoder (as vendored by mozjpeg-sys, built by `cc` with no cmake
//! or nasm; its SIMD code with the `simd` feature) behind one safe function, [`decode_rgb`].
//!
//! Why not the pure-Rust jpeg-decoder: for a 20 MP photo bound for a 400 px thumbnail, both
//! decode at 1/8 scale from the DCT coefficients, and the time is Huffman decoding, which
//! libjpeg-turbo does in well-tuned C about twice as fast (`bench/compare-sharp.sh`).
//!
//! libjpeg reports errors by calling a function that must not return; `csrc/shim.c` takes a
//! `setjmp` in each entry point and turns them into return codes, so nothing unwinds through C.
//! Every bound is the caller's, decided before decoding starts ([`Limits`]): a pixel limit on the
//! header's size, a memory cap on libjpeg's whole-image buffers, a scan limit for progressive
//! files; and a `keep_going` hook asked between rows of blocks and between scans.

#![allow(unsafe_code)]

mod icc;
mod segments;

pub use segments::{SOS, Segment, Segments, segments};

use std::ffi::{CStr, c_char, c_int, c_uint, c_ulong, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

// Links libjpeg for the shim.
use mozjpeg_sys as _;

/// Bounds for one decode.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest full-size width × height accepted (checked on libjpeg's own header).
    pub max_pixels: u64,
    /// Cap on libjpeg's whole-image buffers (a progressive file's coefficients).
    pub max_memory: u64,
    /// Scans a progressive file may have: each is a pass over every coefficient, and libjpeg
    /// only warns about a repeated one, so thousands in a small file are an attack.
    pub max_scans: u32,
}

/// A decoded image: tightly packed RGB rows.
#[derive(Debug)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
    /// The embedded ICC profile, reassembled from its APP2 markers.
    pub icc: Option<Vec<u8>>,
}

/// Why a decode produced nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// libjpeg refused the data (the message is its own), or it broke a bound.
    #[error("{0}")]
    Corrupt(String),
    /// The header's size is over the pixel limit.
    #[error("{pixels} pixels, over the limit of {limit}")]
    TooManyPixels { pixels: u64, limit: u64 },
    /// CMYK or YCCK, which libjpeg does not convert to RGB.
    #[error("CMYK is not decoded here")]
    Cmyk,
    /// `keep_going` answered false.
    #[error("stopped by its caller")]
    Stopped,
}

type KeepGoing<'a> = &'a dyn Fn() -> bool;

mod ffi {
    use super::*;

    pub type Hook = unsafe extern "C" fn(*mut c_void) -> c_int;

    #[repr(C)]
    pub struct Jpeg {
        _opaque: [u8; 0],
    }

    unsafe extern "C" {
        pub fn imgd_jpeg_new() -> *mut Jpeg;
        pub fn imgd_jpeg_destroy(j: *mut Jpeg);
        pub fn imgd_jpeg_message(j: *const Jpeg) -> *const c_char;
        pub fn imgd_jpeg_set_hook(j: *mut Jpeg, hook: Option<Hook>, context: *mut c_void);
        pub fn imgd_jpeg_read_header(
            j: *mut Jpeg,
            data: *const u8,
            size: c_ulong,
            max_memory: c_ulong,
            max_scans: c_int,
            width: *mut c_uint,
            height: *mut c_uint,
            cmyk: *mut c_int,
        ) -> c_int;
        pub fn imgd_jpeg_start(
            j: *mut Jpeg,
            denominator: c_uint,
            width: *mut c_uint,
            height: *mut c_uint,
        ) -> c_int;
        pub fn imgd_jpeg_read_rows(
            j: *mut Jpeg,
            out: *mut u8,
            stride: usize,
            rows: c_uint,
            read: *mut c_uint,
        ) -> c_int;
    }
}

const STOPPED: c_int = -2;

/// Called by the shim's progress monitor: 1 to go on. A panic in the caller's check stops the
/// decode instead of unwinding into C.
unsafe extern "C" fn call_keep_going(context: *mut c_void) -> c_int {
    // SAFETY: `context` is the `&KeepGoing` that `Decompressor::call` set for the duration of
    // the C call that is running now.
    let keep_going = unsafe { &*(context as *const KeepGoing) };
    c_int::from(catch_unwind(AssertUnwindSafe(*keep_going)).unwrap_or(false))
}

/// One libjpeg decompressor, destroyed on drop; borrows the bytes it reads.
struct Decompressor<'data> {
    raw: NonNull<ffi::Jpeg>,
    _data: std::marker::PhantomData<&'data [u8]>,
}

impl Drop for Decompressor<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from imgd_jpeg_new and is destroyed once, here.
        unsafe { ffi::imgd_jpeg_destroy(self.raw.as_ptr()) }
    }
}

impl<'data> Decompressor<'data> {
    fn new() -> Self {
        // SAFETY: allocates a zeroed struct; null only when out of memory.
        let raw = unsafe { ffi::imgd_jpeg_new() };
        Decompressor {
            raw: NonNull::new(raw).expect("allocating a JPEG decompressor"),
            _data: std::marker::PhantomData,
        }
    }

    /// Runs `call` with the hook pointing at `keep_going`, cleared afterwards (the pointer
    /// must not outlive the borrow), and turns its status into a result.
    fn call(
        &mut self,
        keep_going: KeepGoing<'_>,
        call: impl FnOnce(*mut ffi::Jpeg) -> c_int,
    ) -> Result<(), DecodeError> {
        let context = &keep_going as *const KeepGoing as *mut c_void;
        // SAFETY: `context` lives on this frame until after the hook is cleared below.
        unsafe { ffi::imgd_jpeg_set_hook(self.raw.as_ptr(), Some(call_keep_going), context) };
        let status = call(self.raw.as_ptr());
        // SAFETY: clears the hook; `raw` is live.
        unsafe { ffi::imgd_jpeg_set_hook(self.raw.as_ptr(), None, std::ptr::null_mut()) };
        match status {
            0 => Ok(()),
            STOPPED => Err(DecodeError::Stopped),
            _ => Err(DecodeError::Corrupt(self.message())),
        }
    }

    fn message(&self) -> String {
        // SAFETY: the shim's message buffer is always NUL-terminated (zeroed at allocation,
        // written by libjpeg's format_message or a bounded copy).
        unsafe { CStr::from_ptr(ffi::imgd_jpeg_message(self.raw.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Decodes `data` to RGB at 1/`denominator` of its size (1, 2, 4 or 8), asking `keep_going`
/// between rows of blocks; an answer of false stops with [`DecodeError::Stopped`].
pub fn decode_rgb(
    data: &[u8],
    denominator: u32,
    limits: Limits,
    keep_going: &dyn Fn() -> bool,
) -> Result<Rgb, DecodeError> {
    let denominator = match denominator {
        1 | 2 | 4 | 8 => denominator,
        _ => {
            return Err(DecodeError::Corrupt(
                "scale must be 1/1, 1/2, 1/4 or 1/8".into(),
            ));
        }
    };
    // libjpeg keeps the cap in a signed long, and reads 0 as no cap at all.
    let max_memory = c_ulong::try_from(limits.max_memory)
        .unwrap_or(c_ulong::MAX)
        .clamp(1, c_ulong::MAX / 2);
    let mut jpeg = Decompressor::new();
    let (mut width, mut height, mut cmyk) = (0, 0, 0);
    jpeg.call(keep_going, |raw| {
        // SAFETY: `data` outlives `jpeg` (its lifetime is tied to the borrow) and is read only
        // within its length; the out-pointers are to locals.
        unsafe {
            ffi::imgd_jpeg_read_header(
                raw,
                data.as_ptr(),
                data.len() as c_ulong,
                max_memory,
                limits.max_scans.min(c_int::MAX as u32) as c_int,
                &mut width,
                &mut height,
                &mut cmyk,
            )
        }
    })?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooManyPixels {
            pixels,
            limit: limits.max_pixels,
        });
    }
    if cmyk != 0 {
        return Err(DecodeError::Cmyk);
    }
    let icc = icc::icc_profile(data);
    let (mut out_width, mut out_height) = (0, 0);
    jpeg.call(keep_going, |raw| {
        // SAFETY: after a successful header read; out-pointers are to locals.
        unsafe { ffi::imgd_jpeg_start(raw, denominator, &mut out_width, &mut out_height) }
    })?;
    let stride = (out_width as usize).checked_mul(3);
    let Some((stride, size)) = stride.and_then(|s| Some((s, s.checked_mul(out_height as usize)?)))
    else {
        return Err(DecodeError::Corrupt(
            "the output does not fit in memory".into(),
        ));
    };
    let mut rgb = vec![0u8; size];
    // A band of rows per call, so keep_going is asked between bands as well as between scans.
    const BAND: u32 = 16;
    let mut done = 0u32;
    while done < out_height {
        let rows = BAND.min(out_height - done);
        let mut read = 0;
        let band = &mut rgb[done as usize * stride..(done + rows) as usize * stride];
        jpeg.call(keep_going, |raw| {
            // SAFETY: `band` holds `rows` rows of `stride` bytes, the output's width in RGB;
            // the shim writes at most `rows` rows.
            unsafe { ffi::imgd_jpeg_read_rows(raw, band.as_mut_ptr(), stride, rows, &mut read) }
        })?;
        if read == 0 {
            return Err(DecodeError::Corrupt("no rows decoded".into()));
        }
        done += read;
    }
    Ok(Rgb {
        width: out_width,
        height: out_height,
        pixels: rgb,
        icc,
    })
}
