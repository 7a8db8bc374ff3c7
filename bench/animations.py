"""Writes the animated inputs of bench/compare-animated.sh: a GIF and an animated WebP of moving,
photo-like frames (a drifting gradient with noise, so every frame has its own 256-colour palette
and the WebP encoder has real texture), deterministic for a given size and frame count.

Usage: python3 animations.py OUT_DIR  (writes clip.gif, 480x270, and clip.webp, 720x405, 100 frames each)
"""
import random
import sys
from pathlib import Path

from PIL import Image

FRAMES = 100
DELAY_MS = 40


def frames(width: int, height: int) -> list[Image.Image]:
    rng = random.Random(7)
    noise = bytes(rng.randrange(0, 48) for _ in range(width * height))
    out = []
    for i in range(FRAMES):
        shift = i * 4
        base = Image.linear_gradient("L").resize((width, height))
        r = base.transform((width, height), Image.AFFINE, (1, 0, shift, 0, 1, 0))
        g = base.rotate(90 + i, expand=False).resize((width, height))
        b = Image.frombytes("L", (width, height), noise).point(lambda v, i=i: (v * 3 + i * 2) % 256)
        out.append(Image.merge("RGB", (r, g, b)))
    return out


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    gif = [f.quantize(256) for f in frames(480, 270)]
    gif[0].save(out / "clip.gif", save_all=True, append_images=gif[1:], duration=DELAY_MS, loop=0)
    webp = frames(720, 405)
    webp[0].save(out / "clip.webp", save_all=True, append_images=webp[1:], duration=DELAY_MS,
                 loop=0, quality=80)


if __name__ == "__main__":
    main()
