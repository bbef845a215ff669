"""Make the docs' screenshots: a run's report.html, a sweep's sweep.html and a judge
repair's report.html, drawn by a real headless Chromium from pages runner wrote a moment
before.

Usage (from the repository root, runner installed with the dev extra, chromium on PATH):
``python docs/screenshots.py`` -> docs/run-report.png, docs/sweep-report.png and
docs/judge-report.png. Each page is drawn in a tall window and cut below its last line, so
a page that grows keeps all of itself and no empty tail.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
WIDTH, TALLEST, MARGIN = 1100, 6000, 32


def runner(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True)
    if done.returncode not in (0, 1):
        sys.exit(f"python -m runner {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")


def screenshot(page: Path, png: Path, scratch: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not on PATH (apt-get install chromium)")
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={scratch / 'profile'}", f"--window-size={WIDTH},{TALLEST}",
         f"--screenshot={png}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    crop(png)
    print(f"wrote {png}")


def crop(png: Path) -> None:
    """Cut the picture ``MARGIN`` pixels below the last row that is not the page's
    background (the colour of its bottom-left pixel)."""
    import matplotlib.image as mpimg  # the dev extra's; only this script needs it here

    pixels = mpimg.imread(png)
    differs = (pixels != pixels[-1, 0]).any(axis=(1, 2)).nonzero()[0]
    last = int(differs[-1]) if len(differs) else 0
    if last + MARGIN >= pixels.shape[0]:
        sys.exit(f"{png.name}: the page is taller than {TALLEST} px; raise TALLEST")
    mpimg.imsave(png, pixels[: last + MARGIN])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="runner-screenshots-") as tmp:
        scratch = Path(tmp)
        run = scratch / "run"
        runner("parallel=8", "source.count=400", "task.seconds=0.02", "task.fail_rate=0.02",
               "progress=off", f"hydra.run.dir={run}", cwd=scratch)  # fmt: skip
        screenshot(run / "report.html", DOCS / "run-report.png", scratch)
        sweep = scratch / "sweep"
        runner("-m", "parallel=1,2,4,8,16", "source.count=200", "task.seconds=0.02",
               "progress=off", f"hydra.sweep.dir={sweep}", cwd=scratch)  # fmt: skip
        screenshot(sweep / "sweep.html", DOCS / "sweep-report.png", scratch)
        judge = scratch / "judge"
        runner("parallel=8", "task=judge_rerun", "progress=off", f"hydra.run.dir={judge}",
               cwd=scratch)  # fmt: skip
        screenshot(judge / "report.html", DOCS / "judge-report.png", scratch)


if __name__ == "__main__":
    main()
