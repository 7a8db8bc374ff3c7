"""Pillow's own test images (Tests/images of the pillow sdist on PyPI) as a hostile corpus.

The sdist is fetched once with pip (`pip download --no-deps --no-binary :all:`) into
$HOME/.cache/imgd-hostile (or $IMGD_HOSTILE_CACHE), and only Tests/images is extracted next to
it; later runs use the extracted files and never download again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

PILLOW_VERSION = "11.3.0"


def cache_dir() -> Path:
    root = os.environ.get("IMGD_HOSTILE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "imgd-hostile")
    return Path(root)


def pillow_images(version: str = PILLOW_VERSION) -> Path:
    """The directory holding pillow-<version>/Tests/images, downloading the sdist if needed."""
    cache = cache_dir()
    out = cache / f"pillow-{version}-Tests-images"
    done = out / ".complete"
    if done.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"pillow-{version}.tar.gz"
    if not sdist.exists():
        # Bounded: pip's own timeouts, and at most 10 minutes.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "-q", "-d", str(cache), f"pillow=={version}"],
            check=True, timeout=600,
        )
    tmp = out.with_suffix(".partial")
    if tmp.exists():
        import shutil
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    prefix = f"pillow-{version}/Tests/images/"
    with tarfile.open(sdist) as tar:
        for m in tar.getmembers():
            if not m.isfile() or not m.name.startswith(prefix):
                continue
            rel = m.name[len(prefix):]
            if ".." in Path(rel).parts:
                continue
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(m) as src, open(dest, "wb") as dst:
                dst.write(src.read())
    (tmp / ".complete").write_text(version)
    if out.exists():
        import shutil
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def files(version: str = PILLOW_VERSION) -> list[Path]:
    root = pillow_images(version)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".complete")


if __name__ == "__main__":
    fs = files()
    print(len(fs), "files under", pillow_images())
