#!/usr/bin/env python
"""Render a report's HTML page in headless Chromium and check the screenshot is not blank.

usage: python scripts/check_report.py REPORT_DIR [--width 1280] [--height 4000]

Writes REPORT_DIR/screenshot.png (look at it: tables readable, figures visible, nothing cut
off). Exits 1 with a clear message when Chromium is missing, the render fails, or the
screenshot is a single colour. Install Chromium on Debian: apt-get install -y chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, png: Path, width: int, height: int, timeout: float = 120.0) -> None:
    exe = find_chromium()
    if exe is None:
        raise SystemExit(f"check_report: no Chromium found (tried {', '.join(CANDIDATES)}); "
                         "install it, e.g. `apt-get install -y chromium`")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png}", html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not png.is_file():
        raise SystemExit(f"check_report: Chromium failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def distinct_colours(png: Path) -> int:
    """Number of distinct RGB colours in the PNG (1 = blank page)."""
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(png)[..., :3]
    flat = (img.reshape(-1, 3) * 255).round().astype(np.uint32)
    return int(np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]).size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    args = parser.parse_args(argv)
    html = args.report_dir / "report.html"
    if not html.is_file():
        sys.stderr.write(f"check_report: {html} does not exist (run `recgen report ... --out {args.report_dir}`)\n")
        return 1
    png = args.report_dir / "screenshot.png"
    png.unlink(missing_ok=True)
    screenshot(html, png, args.width, args.height)
    colours = distinct_colours(png)
    if colours <= 1:
        sys.stderr.write(f"check_report: {png} is a single colour: the page rendered blank\n")
        return 1
    sys.stdout.write(f"ok: {png} ({args.width}x{args.height}, {colours} distinct colours)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
