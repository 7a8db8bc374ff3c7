"""Generated hostile inputs for every format imgd accepts (PNG, JPEG, GIF, WebP).

Everything is built here from bytes (zlib, struct) or with Pillow for the few valid bitstreams
(a baseline/progressive JPEG, a 1x1 VP8L / 16x16 VP8), so the corpus is reproducible and small on
disk: the bombs are kilobytes that claim or inflate to gigabytes.

Each item is a `Bomb`: a name, the bytes, what an upload must answer (`expect`: allowed statuses,
None = any non-5xx; `expect_code`: the error code when rejected), and the variants to request
when the upload is accepted.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field

MIB = 1 << 20

FITS = ("cover", "contain", "fill", "inside", "outside")

# Variants asked of every accepted upload (the Pillow corpus and the bombs alike).
DEFAULT_VARIANTS = (
    "w=64",
    "w=300,h=200,fit=cover,f=webp",
    "w=200,h=200,fit=contain,f=png",
    "f=avif,w=50",
    "blur=5,w=100",
    "w=120,h=80,fit=cover,g=smart,rotate=90,f=jpeg,q=30",
    "w=90,h=60,fit=outside,f=gif",
)
# Full-size re-encodes: what makes a kept ICC profile or a lying header show.
BOMB_VARIANTS = DEFAULT_VARIANTS + ("f=webp", "f=png", "f=jpeg")
# For inputs whose every render is expensive (lying headers, ~50 Mpx sources, truncated copies):
# a thumbnail, a crop and a full-size re-encode are enough to show it.
LIGHT_VARIANTS = ("w=64", "w=300,h=200,fit=cover,f=webp", "f=png")
HEAVY_VARIANTS = ("w=64,f=webp", "w=300,h=200,fit=cover,g=smart,f=jpeg", "f=webp")

# The largest outputs a client may ask for (limits.max_output_dimension = 8192), every fit.
EXTREME_VARIANTS = tuple(
    f"w={w},h={h},fit={fit}" for (w, h) in ((8192, 1), (1, 8192), (8192, 8192)) for fit in FITS
) + ("w=8192", "h=8192", "w=4096,h=4096,fit=fill,dpr=2,f=webp")
# A lighter set for the second image of each shape.
EXTREME_LIGHT = ("w=8192,h=1,fit=cover", "w=1,h=8192,fit=cover", "w=8192,h=8192,fit=fill")

REJECT = frozenset(range(400, 500))  # must be refused, with a stable code


@dataclass
class Bomb:
    name: str
    data: bytes
    expect: frozenset[int] | None = None
    expect_code: str | None = None
    variants: tuple[str, ...] = BOMB_VARIANTS
    note: str = ""
    truncate: bool = True  # also upload truncated copies (asked for LIGHT_VARIANTS)
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- helpers


def zlib_fill(n: int, byte: bytes = b"\0", level: int = 9, row: bytes | None = None) -> bytes:
    """zlib stream of `n` bytes of `byte` (or of repeated `row`), compressed in 1 MiB steps."""
    c = zlib.compressobj(level)
    out = []
    if row is not None:
        per = max(1, MIB // len(row))
        block = row * per
        rows = n // len(row)
        while rows > 0:
            k = min(rows, per)
            out.append(c.compress(block if k == per else row * k))
            rows -= k
    else:
        block = byte * MIB
        left = n
        while left > 0:
            k = min(left, MIB)
            out.append(c.compress(block if k == MIB else byte * k))
            left -= k
    out.append(c.flush())
    return b"".join(out)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def ihdr(w: int, h: int, depth: int = 8, ctype: int = 2, interlace: int = 0) -> bytes:
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))


CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_raw(w: int, h: int, depth: int = 8, ctype: int = 2, before_idat: list[bytes] = (), idat: bytes | None = None,
            after_idat: list[bytes] = ()) -> bytes:
    """A PNG of zero pixels (a valid zlib IDAT unless `idat` is given)."""
    if idat is None:
        stride = 1 + (w * CHANNELS[ctype] * depth + 7) // 8
        idat = zlib_fill(stride * h, row=b"\0" * stride)
    out = [PNG_SIG, ihdr(w, h, depth, ctype)]
    if ctype == 3:
        out.append(png_chunk(b"PLTE", b"\0\0\0\xff\xff\xff"))
    out += list(before_idat)
    # IDAT in 1 MiB chunks as encoders do.
    for i in range(0, len(idat), MIB):
        out.append(png_chunk(b"IDAT", idat[i:i + MIB]))
    out += list(after_idat)
    out.append(png_chunk(b"IEND", b""))
    return b"".join(out)


def png_interlaced_zero(w: int, h: int, bpp: int = 4) -> bytes:
    """A valid Adam7-interlaced RGBA8 PNG of zeros."""
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    c = zlib.compressobj(9)
    out = []
    for x0, y0, dx, dy in passes:
        pw = (w - x0 + dx - 1) // dx if w > x0 else 0
        ph = (h - y0 + dy - 1) // dy if h > y0 else 0
        if pw == 0 or ph == 0:
            continue
        row = b"\0" * (1 + pw * bpp)
        per = max(1, MIB // len(row))
        left = ph
        while left:
            k = min(left, per)
            out.append(c.compress(row * k))
            left -= k
    out.append(c.flush())
    idat = b"".join(out)
    chunks = [PNG_SIG, ihdr(w, h, 8, 6, 1)]
    for i in range(0, len(idat), MIB):
        chunks.append(png_chunk(b"IDAT", idat[i:i + MIB]))
    chunks.append(png_chunk(b"IEND", b""))
    return b"".join(chunks)


def tiny_idat(w: int = 16, h: int = 16, ctype: int = 2) -> bytes:
    stride = 1 + w * CHANNELS[ctype]
    return zlib.compress(b"\0" * stride * h)


# --------------------------------------------------------------- EXIF (TIFF)


def ifd_entry(tag: int, typ: int, count: int, value: int) -> bytes:
    return struct.pack("<HHII", tag, typ, count, value)


def tiff_ifd(entries: list[bytes], next_ifd: int, declared: int | None = None) -> bytes:
    n = len(entries) if declared is None else declared
    return struct.pack("<H", n) + b"".join(entries) + struct.pack("<I", next_ifd)


def exif_loop() -> bytes:
    """IFD0 whose next-IFD pointer points at itself, and an Exif sub-IFD pointing back to IFD0."""
    # TIFF header at 0, IFD0 at 8.
    e = [ifd_entry(0x0112, 3, 1, 6), ifd_entry(0x8769, 4, 1, 8), ifd_entry(0x8825, 4, 1, 8)]
    return b"II*\0" + struct.pack("<I", 8) + tiff_ifd(e, 8)


def exif_cycle() -> bytes:
    """IFD0 -> IFD1 -> IFD0 via next pointers; ExifIFD -> Interop IFD -> IFD0 via sub-IFD tags."""
    ifd0 = 8
    ifd1 = ifd0 + 2 + 12 * 3 + 4
    exififd = ifd1 + 2 + 12 * 2 + 4
    e0 = [ifd_entry(0x0112, 3, 1, 3), ifd_entry(0x8769, 4, 1, exififd), ifd_entry(0x8825, 4, 1, ifd1)]
    e1 = [ifd_entry(0x0112, 3, 1, 8), ifd_entry(0x8769, 4, 1, ifd0)]
    ex = [ifd_entry(0xA005, 4, 1, ifd0), ifd_entry(0x8769, 4, 1, exififd)]
    return b"II*\0" + struct.pack("<I", ifd0) + tiff_ifd(e0, ifd1) + tiff_ifd(e1, ifd0) + tiff_ifd(ex, ifd1)


def exif_huge_counts() -> bytes:
    """Entries claiming gigabytes of values (LONG x 0x3FFFFFFF, RATIONAL x 0x1FFFFFFF, ASCII 4 GiB)."""
    e = [
        ifd_entry(0x0112, 3, 0xFFFF, 8),  # Orientation as 65535 SHORTs
        ifd_entry(0x010F, 2, 0xFFFFFFFF, 8),  # Make: 4 GiB ASCII
        ifd_entry(0x011A, 5, 0x1FFFFFFF, 8),  # XResolution: 4 GiB of RATIONALs
        ifd_entry(0x0111, 4, 0x3FFFFFFF, 8),  # StripOffsets
        ifd_entry(0x927C, 7, 0x7FFFFFFF, 8),  # MakerNote
    ]
    return b"II*\0" + struct.pack("<I", 8) + tiff_ifd(e, 0)


def exif_many_entries(room: int = 65000) -> bytes:
    """An IFD that declares 65535 entries (as many as fit are there: Orientation, over and over)."""
    n = (room - 8 - 6) // 12
    e = [ifd_entry(0x0112, 3, 1, 1 + (i % 8)) for i in range(n)]
    return b"II*\0" + struct.pack("<I", 8) + tiff_ifd(e, 8, declared=0xFFFF)


def exif_bad_orientation(value: int) -> bytes:
    return b"II*\0" + struct.pack("<I", 8) + tiff_ifd([ifd_entry(0x0112, 3, 1, value)], 0)


# --------------------------------------------------------------------- JPEG


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(marker, offset) of each marker segment up to the first SOS."""
    out, i = [], 2
    while i + 4 <= len(data):
        assert data[i] == 0xFF, (i, data[i])
        marker = data[i + 1]
        out.append((marker, i))
        if marker == 0xDA:
            break
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        i += 2 + length
    return out


def app1(payload: bytes) -> bytes:
    assert len(payload) + 2 <= 0xFFFF
    return b"\xFF\xE1" + struct.pack(">H", len(payload) + 2) + payload


def insert_after_app0(jpeg: bytes, segments: bytes) -> bytes:
    segs = jpeg_segments(jpeg)
    pos = 2
    if segs and segs[0][0] == 0xE0:
        pos = segs[1][1]
    return jpeg[:pos] + segments + jpeg[pos:]


def patch_sof(jpeg: bytes, w: int, h: int) -> bytes:
    for marker, off in jpeg_segments(jpeg):
        if marker in (0xC0, 0xC1, 0xC2):
            b = bytearray(jpeg)
            b[off + 5:off + 7] = struct.pack(">H", h)
            b[off + 7:off + 9] = struct.pack(">H", w)
            return bytes(b)
    raise ValueError("no SOF")


def with_scans_repeated(jpeg: bytes, times: int) -> bytes:
    """The scans of a progressive JPEG (first SOS to EOI, DHTs between them included) `times` times."""
    first_sos = jpeg_segments(jpeg)[-1][1]
    assert jpeg[first_sos + 1] == 0xDA
    end = jpeg.rindex(b"\xFF\xD9")
    return jpeg[:first_sos] + jpeg[first_sos:end] * times + b"\xFF\xD9"


# ---------------------------------------------------------------------- GIF

GIF_1PX_IMAGE_DATA = b"\x02\x02\x44\x01\x00"  # LZW min code 2: clear, 0, end


def gif(screen_w: int, screen_h: int, frames: list[tuple[int, int, int, int]], loop: bool = True,
        data: bytes = GIF_1PX_IMAGE_DATA) -> bytes:
    """GIF89a with a 2-colour global table; each frame (x, y, w, h) carries `data` as its pixels."""
    out = [b"GIF89a", struct.pack("<HHBBB", screen_w, screen_h, 0x80, 0, 0), b"\0\0\0\xff\xff\xff"]
    if loop:
        out.append(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00")
    for x, y, w, h in frames:
        out.append(b"\x21\xF9\x04\x04\x02\x00\x00\x00")  # GCE: delay 2, dispose none
        out.append(b"\x2C" + struct.pack("<HHHHB", x, y, w, h, 0))
        out.append(data)
    out.append(b"\x3B")
    return b"".join(out)


# --------------------------------------------------------------------- WebP


def riff_chunk(kind: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return kind + struct.pack("<I", len(data)) + data + pad


def webp(chunks: list[bytes]) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def u24(n: int) -> bytes:
    return struct.pack("<I", n)[:3]


def vp8x(w: int, h: int, flags: int = 0) -> bytes:
    return riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + u24(w - 1) + u24(h - 1))


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    out, i = [], 12
    while i + 8 <= len(data):
        kind = data[i:i + 4]
        n = struct.unpack("<I", data[i + 4:i + 8])[0]
        out.append((kind, data[i + 8:i + 8 + n]))
        i += 8 + n + (n & 1)
    return out


def anmf(x: int, y: int, w: int, h: int, frame: bytes, duration: int = 20) -> bytes:
    return riff_chunk(b"ANMF", u24(x // 2) + u24(y // 2) + u24(w - 1) + u24(h - 1) + u24(duration) + b"\0" + frame)


def vp8l_header(w: int, h: int) -> bytes:
    bits = (w - 1) | ((h - 1) << 14) | (1 << 28)
    return b"\x2f" + struct.pack("<I", bits)


# ------------------------------------------------------------ Pillow inputs


def pillow_bytes(img, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(w: int, h: int, mode: str = "RGB"):
    """A smooth but non-constant image (so codecs do real work), cheap to make at any size."""
    from PIL import Image

    gx = Image.linear_gradient("L").resize((w, 1))
    gy = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((1, h))
    r = gx.resize((w, h))
    g = gy.resize((w, h))
    b = Image.effect_noise((min(w, 512), min(h, 512)), 40).resize((w, h))
    img = Image.merge("RGB", (r, g, b))
    return img.convert(mode) if mode != "RGB" else img


# ------------------------------------------------------------------ corpus


def generate() -> list[Bomb]:
    from PIL import Image

    bombs: list[Bomb] = []
    add = bombs.append

    # ---- PNG
    add(Bomb("png_ihdr_100000x100000.png", png_raw(100000, 100000, idat=tiny_idat()), REJECT, "too_many_pixels",
             note="10 Gpx claimed in IHDR, 16x16 of data"))
    add(Bomb("png_ihdr_2147483647x1.png", png_raw(0x7FFFFFFF, 1, idat=tiny_idat()), REJECT, "too_many_pixels"))
    add(Bomb("png_ihdr_1x2147483647.png", png_raw(1, 0x7FFFFFFF, idat=tiny_idat()), REJECT, "too_many_pixels"))
    add(Bomb("png_ihdr_0x0.png", png_raw(0, 0, idat=tiny_idat()), REJECT))
    add(Bomb("png_ihdr_7000x7000_lying.png", png_raw(7000, 7000, 8, 6, idat=tiny_idat()), variants=LIGHT_VARIANTS,
             note="49 Mpx (under max_pixels) claimed, 16x16 of data"))
    add(Bomb("png_idat_bomb_7000x7000_rgba16.png", png_raw(7000, 7000, 16, 6), variants=HEAVY_VARIANTS,
             note="valid: 49 Mpx RGBA16, 392 MB of pixels from ~400 KB"))
    add(Bomb("png_idat_bomb_7000x7000_adam7.png", png_interlaced_zero(7000, 7000), variants=HEAVY_VARIANTS,
             note="valid: 49 Mpx RGBA8 interlaced"))
    iccp = b"ICC Profile\0\0" + zlib_fill(256 * MIB)
    add(Bomb("png_iccp_bomb_256mib.png", png_raw(16, 16, before_idat=[png_chunk(b"iCCP", iccp)]),
             note="16x16, iCCP inflates to 256 MiB"))
    ztxt = b"Comment\0\0" + zlib_fill(256 * MIB, b"A")
    add(Bomb("png_ztxt_bomb_256mib.png", png_raw(16, 16, before_idat=[png_chunk(b"zTXt", ztxt)])))
    itxt = b"XML:com.adobe.xmp\0\x01\x00\0\0" + zlib_fill(256 * MIB, b"<")
    add(Bomb("png_itxt_xmp_bomb_256mib.png", png_raw(16, 16, before_idat=[png_chunk(b"iTXt", itxt)])))
    many = png_chunk(b"zTXt", b"Comment\0\0" + zlib_fill(16 * MIB, b"B"))
    add(Bomb("png_ztxt_100x16mib.png", png_raw(16, 16, before_idat=[many] * 100),
             note="100 zTXt chunks, 1.6 GiB inflated"))
    add(Bomb("png_exif_loop.png", png_raw(16, 16, before_idat=[png_chunk(b"eXIf", exif_loop())])))
    add(Bomb("png_exif_huge_counts.png", png_raw(16, 16, before_idat=[png_chunk(b"eXIf", exif_huge_counts())])))
    add(Bomb("png_text_20000_chunks.png",
             png_raw(16, 16, before_idat=[png_chunk(b"tEXt", b"k\0" + b"v" * 100)] * 20000)))
    # APNG
    frame_idat = zlib.compress(b"\0" + b"\0" * 4)
    def fctl(seq: int) -> bytes:
        return png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, 1, 1, 0, 0, 1, 100, 0, 0))
    apng = [PNG_SIG, ihdr(1, 1, 8, 6), png_chunk(b"acTL", struct.pack(">II", 5000, 0)), fctl(0),
            png_chunk(b"IDAT", frame_idat)]
    for i in range(1, 5000):
        apng.append(fctl(2 * i - 1))
        apng.append(png_chunk(b"fdAT", struct.pack(">I", 2 * i) + frame_idat))
    apng.append(png_chunk(b"IEND", b""))
    add(Bomb("apng_5000_frames.png", b"".join(apng), note="animated PNG, 5000 frames"))
    add(Bomb("apng_actl_4g_frames.png",
             b"".join([PNG_SIG, ihdr(1, 1, 8, 6), png_chunk(b"acTL", struct.pack(">II", 0xFFFFFFFF, 0)), fctl(0),
                       png_chunk(b"IDAT", frame_idat), png_chunk(b"IEND", b"")])))
    tiny_png = png_raw(16, 16, idat=tiny_idat())
    add(Bomb("png_tiny_16x16.png", tiny_png, frozenset({201}),
             variants=BOMB_VARIANTS + ("w=8192,h=8192,fit=fill,f=webp", "w=8192,h=8192,fit=cover,f=png",
                                       "w=8192,h=8192,fit=contain,f=jpeg", "w=8192,h=8192,fit=fill,f=gif",
                                       "w=8192,h=8192,fit=fill,f=avif", "w=8192,h=8192,fit=fill,blur=100,f=jpeg",
                                       "w=8192,h=8192,fit=cover,g=smart,f=jpeg"),
             note="tiny source, largest enlargements", truncate=False))

    # ---- JPEG
    base = pillow_bytes(gradient(16, 16), "JPEG", quality=90)
    add(Bomb("jpeg_sof_65535x65535.jpg", patch_sof(base, 65535, 65535), REJECT, "too_many_pixels"))
    add(Bomb("jpeg_sof_65535x1.jpg", patch_sof(base, 65535, 1), variants=LIGHT_VARIANTS, note="lying header, strip"))
    add(Bomb("jpeg_sof_8000x6000_lying.jpg", patch_sof(base, 8000, 6000), variants=LIGHT_VARIANTS, note="48 Mpx claimed, 16x16 of data"))
    add(Bomb("jpeg_sof_0x0.jpg", patch_sof(base, 0, 0), REJECT))
    prog_small = pillow_bytes(gradient(64, 64), "JPEG", quality=90, progressive=True)
    add(Bomb("jpeg_progressive_5000_scans.jpg", with_scans_repeated(prog_small, 500), note="~5000 SOS"))
    prog_big = pillow_bytes(gradient(1024, 1024), "JPEG", quality=40, progressive=True)
    reps = max(2, (12 * MIB) // max(1, len(prog_big)))
    add(Bomb("jpeg_progressive_1024px_many_scans.jpg", with_scans_repeated(prog_big, reps), variants=HEAVY_VARIANTS,
             note=f"1 Mpx, scans repeated {reps}x"))
    add(Bomb("jpeg_exif_ifd_loop.jpg", insert_after_app0(base, app1(b"Exif\0\0" + exif_loop()))))
    add(Bomb("jpeg_exif_ifd_cycle.jpg", insert_after_app0(base, app1(b"Exif\0\0" + exif_cycle()))))
    add(Bomb("jpeg_exif_huge_counts.jpg", insert_after_app0(base, app1(b"Exif\0\0" + exif_huge_counts()))))
    add(Bomb("jpeg_exif_65535_entries.jpg", insert_after_app0(base, app1(b"Exif\0\0" + exif_many_entries()))))
    many_app1 = app1(b"Exif\0\0" + exif_many_entries()) * 200
    add(Bomb("jpeg_exif_200_app1.jpg", insert_after_app0(base, many_app1), note="200 APP1 of 64 KiB", truncate=False))
    for v in (0, 9, 0xFFFF):
        add(Bomb(f"jpeg_exif_orientation_{v}.jpg",
                 insert_after_app0(base, app1(b"Exif\0\0" + exif_bad_orientation(v))), truncate=False))
    # APP2 ICC_PROFILE chunks: 250 chunks of 64 KiB = 16 MiB profile (kept in variants).
    icc_chunks = b"".join(
        b"\xFF\xE2" + struct.pack(">H", 2 + 14 + 65000) + b"ICC_PROFILE\0" + bytes([i + 1, 250]) + b"\0" * 65000
        for i in range(250))
    add(Bomb("jpeg_icc_16mib.jpg", insert_after_app0(base, icc_chunks), note="16 MiB ICC in 250 APP2"))

    # ---- GIF
    add(Bomb("gif_5000_frames.gif", gif(1, 1, [(0, 0, 1, 1)] * 5000), REJECT, "too_many_frames"))
    add(Bomb("gif_1000_frames_4000x4000_screen.gif",
             gif(4000, 4000, [((i * 37) % 3999, (i * 91) % 3999, 1, 1) for i in range(1000)]), variants=HEAVY_VARIANTS,
             note="at max_frames, 16 Mpx screen, 1x1 frames"))
    add(Bomb("gif_screen_65535x65535.gif", gif(65535, 65535, [(0, 0, 1, 1)]), REJECT, "too_many_pixels"))
    add(Bomb("gif_frame_65535x65535_on_1x1.gif", gif(1, 1, [(0, 0, 65535, 65535)]), variants=LIGHT_VARIANTS,
             note="frame descriptor larger than the screen"))
    add(Bomb("gif_frame_offset_outside.gif", gif(16, 16, [(65000, 65000, 1000, 1000), (0, 0, 1, 1)])))
    big_gif = pillow_bytes(Image.new("P", (4000, 4000), 1), "GIF")
    add(Bomb("gif_valid_4000x4000.gif", big_gif, frozenset({201}), variants=HEAVY_VARIANTS + EXTREME_LIGHT))
    add(Bomb("gif_no_frames.gif", gif(16, 16, [])))

    # ---- WebP
    vp8l_1px = dict(webp_chunks(pillow_bytes(Image.new("RGBA", (1, 1), (255, 0, 0, 255)), "WEBP", lossless=True)))[b"VP8L"]
    vp8l_chunk = riff_chunk(b"VP8L", vp8l_1px)
    vp8_16 = dict(webp_chunks(pillow_bytes(gradient(16, 16), "WEBP", quality=80)))[b"VP8 "]
    # 2^24 x 2^24 breaks the spec's "width x height < 2^32" (any refusal will do); 65536 x 65535 is legal.
    add(Bomb("webp_vp8x_canvas_16777216x16777216.webp", webp([vp8x(1 << 24, 1 << 24), vp8l_chunk]), REJECT))
    add(Bomb("webp_vp8x_canvas_65536x65535.webp", webp([vp8x(65536, 65535), vp8l_chunk]), REJECT, "too_many_pixels"))
    add(Bomb("webp_vp8x_canvas_7000x7000_lying.webp", webp([vp8x(7000, 7000), vp8l_chunk]), variants=LIGHT_VARIANTS,
             note="49 Mpx canvas, 1x1 bitstream"))
    add(Bomb("webp_vp8l_16384x16384.webp", webp([riff_chunk(b"VP8L", vp8l_header(16384, 16384) + vp8l_1px[5:])]),
             REJECT, "too_many_pixels"))
    vp8_big = bytearray(vp8_16)
    vp8_big[6:10] = struct.pack("<HH", 16383, 16383)
    add(Bomb("webp_vp8_16383x16383.webp", webp([riff_chunk(b"VP8 ", bytes(vp8_big))]), REJECT, "too_many_pixels"))
    frame = riff_chunk(b"VP8L", vp8l_1px)
    anim = [vp8x(1, 1, 0x02 | 0x10), riff_chunk(b"ANIM", b"\0\0\0\0\0\0")]
    add(Bomb("webp_anim_5000_frames.webp", webp(anim + [anmf(0, 0, 1, 1, frame)] * 5000), REJECT, "too_many_frames"))
    anim_big = [vp8x(4000, 4000, 0x02 | 0x10), riff_chunk(b"ANIM", b"\0\0\0\0\0\0")]
    add(Bomb("webp_anim_1000_frames_4000x4000.webp",
             webp(anim_big + [anmf((i * 74) % 3998, (i * 38) % 3998, 1, 1, frame) for i in range(1000)]),
             variants=HEAVY_VARIANTS,
             note="at max_frames, 16 Mpx canvas"))
    add(Bomb("webp_anim_frame_outside_canvas.webp",
             webp(anim + [anmf(0x1FFFFE, 0x1FFFFE, 1 << 24, 1 << 24, frame)])))
    add(Bomb("webp_iccp_20mib.webp", webp([vp8x(16, 16, 0x20), riff_chunk(b"ICCP", b"\0" * (20 * MIB)),
                                           riff_chunk(b"VP8 ", vp8_16)]), note="20 MiB ICC kept in variants?"))
    add(Bomb("webp_exif_loop.webp", webp([vp8x(16, 16, 0x08), riff_chunk(b"VP8 ", vp8_16),
                                          riff_chunk(b"EXIF", exif_loop())])))
    add(Bomb("webp_riff_size_4g.webp", b"RIFF\xff\xff\xff\xffWEBP" + vp8l_chunk))

    # ---- truncations of each
    for b in list(bombs):
        if b.truncate and len(b.data) > 40:
            cut = Bomb(b.name.replace(".", "_trunc50.", 1), b.data[: len(b.data) // 2], variants=LIGHT_VARIANTS,
                       truncate=False)
            bombs.append(cut)
    return bombs


def strips() -> list[Bomb]:
    """Valid thin strips and panoramas, asked for at the largest sizes with every fit."""
    from PIL import Image  # noqa: F401

    out = []
    for (w, h) in ((1, 10000), (10000, 1)):
        img = gradient(w, h)
        out.append(Bomb(f"png_strip_{w}x{h}.png", pillow_bytes(img, "PNG"), frozenset({201}),
                        variants=EXTREME_VARIANTS, truncate=False))
        out.append(Bomb(f"jpeg_strip_{w}x{h}.jpg", pillow_bytes(img, "JPEG", quality=85), frozenset({201}),
                        variants=EXTREME_LIGHT, truncate=False))
    pano = gradient(6000, 1000)
    out.append(Bomb("jpeg_panorama_6000x1000.jpg", pillow_bytes(pano, "JPEG", quality=85), frozenset({201}),
                    variants=EXTREME_VARIANTS, truncate=False))
    out.append(Bomb("png_panorama_6000x1000.png", pillow_bytes(pano, "PNG"), frozenset({201}),
                    variants=EXTREME_LIGHT, truncate=False))
    # Valid files truncated at 1 %, 50 % and all but the last bytes.
    for b in list(out):
        for frac, tag in ((0.01, "trunc1"), (0.5, "trunc50"), (None, "trunclast")):
            n = len(b.data) - 2 if frac is None else max(8, int(len(b.data) * frac))
            out.append(Bomb(b.name.replace(".", f"_{tag}.", 1), b.data[:n], variants=EXTREME_LIGHT, truncate=False))
    return out


if __name__ == "__main__":
    import sys
    import time

    t = time.time()
    items = generate() + strips()
    for b in items:
        print(f"{len(b.data):>10}  {b.name}")
    print(f"{len(items)} files in {time.time() - t:.1f}s", file=sys.stderr)
