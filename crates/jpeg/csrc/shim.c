/*
 * libjpeg's error handling is "call error_exit, which must not return": a C caller longjmps
 * back to a setjmp taken before the call. Rust cannot take a setjmp, so each entry point below
 * takes its own and turns a libjpeg error into a return code and a message. Nothing here
 * writes to stderr. A warning is an error, as sharp's default `failOn: 'warning'` has it: libjpeg
 * warns and goes on where data is missing or damaged (a truncated upload decodes with its lower
 * half grey), and a half-received photo must be refused, not stored.
 *
 * The progress monitor, which libjpeg calls between MCU rows and scans, enforces the scan limit
 * (a progressive file can carry thousands of scans, each a pass over every coefficient) and asks
 * the caller's keep_going hook whether anyone still waits for the result.
 *
 * No marker is saved (jpeg_save_markers): libjpeg gives each saved marker its own allocation,
 * outside max_memory_to_use, and appends it by walking the list, so a file of millions of empty
 * APP2 markers cost gigabytes and quadratic time before any hook ran. Unsaved markers are
 * skipped in linear time; the ICC profile is assembled by the Rust side from the header bytes.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jpeglib.h"

#define IMGD_OK 0
#define IMGD_CORRUPT -1
#define IMGD_STOPPED -2

typedef int (*imgd_keep_going)(void *context);

struct imgd_error {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  int status;
  char message[JMSG_LENGTH_MAX];
};

struct imgd_progress {
  struct jpeg_progress_mgr pub;
  int max_scans;
  imgd_keep_going keep_going;
  void *context;
};

typedef struct imgd_jpeg {
  struct jpeg_decompress_struct cinfo;
  struct imgd_error error;
  struct imgd_progress progress;
} imgd_jpeg;

static void on_error(j_common_ptr cinfo) {
  struct imgd_error *error = (struct imgd_error *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, error->message);
  error->status = IMGD_CORRUPT;
  longjmp(error->jump, 1);
}

/* Warnings (level < 0) end the decode like errors; trace messages (level >= 0) are dropped. */
static void on_message(j_common_ptr cinfo, int level) {
  if (level < 0) on_error(cinfo);
}

static void stop_with(j_common_ptr cinfo, int status, const char *why) {
  struct imgd_error *error = (struct imgd_error *)cinfo->err;
  strncpy(error->message, why, sizeof error->message - 1);
  error->message[sizeof error->message - 1] = 0;
  error->status = status;
  longjmp(error->jump, 1);
}

static void on_progress(j_common_ptr cinfo) {
  struct imgd_progress *progress = (struct imgd_progress *)cinfo->progress;
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  if (d->input_scan_number > progress->max_scans)
    stop_with(cinfo, IMGD_CORRUPT, "too many progressive scans");
  if (progress->keep_going && !progress->keep_going(progress->context))
    stop_with(cinfo, IMGD_STOPPED, "stopped by its caller");
}

imgd_jpeg *imgd_jpeg_new(void) { return calloc(1, sizeof(imgd_jpeg)); }

/* Safe on a struct jpeg_create_decompress never finished: destroy checks for its memory manager. */
void imgd_jpeg_destroy(imgd_jpeg *j) {
  if (!j) return;
  jpeg_destroy_decompress(&j->cinfo);
  free(j);
}

const char *imgd_jpeg_message(const imgd_jpeg *j) { return j->error.message; }

/* Sets the hook the next calls use; Rust clears it after each call it made. */
void imgd_jpeg_set_hook(imgd_jpeg *j, imgd_keep_going keep_going, void *context) {
  j->progress.keep_going = keep_going;
  j->progress.context = context;
}

/*
 * Reads the headers of `data` (which must outlive `j`): dimensions and colour space.
 * `max_memory` caps libjpeg's whole-image buffers (the coefficients of a progressive file);
 * `max_scans` the number of scans it will read.
 */
int imgd_jpeg_read_header(imgd_jpeg *j, const unsigned char *data, unsigned long size,
                          unsigned long max_memory, int max_scans, unsigned *width,
                          unsigned *height, int *cmyk) {
  j->cinfo.err = jpeg_std_error(&j->error.pub);
  j->error.pub.error_exit = on_error;
  j->error.pub.emit_message = on_message;
  if (setjmp(j->error.jump)) return j->error.status;
  jpeg_create_decompress(&j->cinfo);
  j->cinfo.mem->max_memory_to_use = (long)max_memory;
  j->progress.pub.progress_monitor = on_progress;
  j->progress.max_scans = max_scans;
  j->cinfo.progress = &j->progress.pub;
  jpeg_mem_src(&j->cinfo, data, size);
  jpeg_read_header(&j->cinfo, TRUE);
  *width = j->cinfo.image_width;
  *height = j->cinfo.image_height;
  *cmyk = j->cinfo.jpeg_color_space == JCS_CMYK || j->cinfo.jpeg_color_space == JCS_YCCK;
  return IMGD_OK;
}

/* Starts decoding to RGB at 1/`denominator` scale (1, 2, 4 or 8); says the output size. */
int imgd_jpeg_start(imgd_jpeg *j, unsigned denominator, unsigned *width, unsigned *height) {
  if (setjmp(j->error.jump)) return j->error.status;
  j->cinfo.scale_num = 1;
  j->cinfo.scale_denom = denominator;
  j->cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&j->cinfo);
  if (j->cinfo.output_components != 3) stop_with((j_common_ptr)&j->cinfo, IMGD_CORRUPT, "not RGB");
  *width = j->cinfo.output_width;
  *height = j->cinfo.output_height;
  return IMGD_OK;
}

/* Decodes up to `rows` rows into `out` (`stride` bytes apart); says how many it wrote. */
int imgd_jpeg_read_rows(imgd_jpeg *j, unsigned char *out, size_t stride, unsigned rows,
                        unsigned *read) {
  *read = 0;
  if (setjmp(j->error.jump)) return j->error.status;
  while (*read < rows && j->cinfo.output_scanline < j->cinfo.output_height) {
    JSAMPROW row = out + (size_t)(*read) * stride;
    JDIMENSION got = jpeg_read_scanlines(&j->cinfo, &row, 1);
    if (got == 0) break; /* suspension, which a memory source never asks for */
    *read += got;
  }
  return IMGD_OK;
}
