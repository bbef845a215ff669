"""Make README's screenshots: a run's report.html and a sweep's sweep.html, drawn by a real
headless Chromium from pages runner wrote a moment before.

Usage (from the repository root, runner installed, chromium on PATH):
``python docs/screenshots.py`` -> docs/run-report.png and docs/sweep-report.png.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def runner(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True)
    if done.returncode not in (0, 1):
        sys.exit(f"python -m runner {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")


def screenshot(page: Path, png: Path, height: int, scratch: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not on PATH (apt-get install chromium)")
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={scratch / 'profile'}", f"--window-size=1100,{height}",
         f"--screenshot={png}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    print(f"wrote {png}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="runner-screenshots-") as tmp:
        scratch = Path(tmp)
        run = scratch / "run"
        runner("parallel=8", "source.count=400", "task.seconds=0.02", "task.fail_rate=0.05",
               "progress=off", f"hydra.run.dir={run}", cwd=scratch)  # fmt: skip
        screenshot(run / "report.html", DOCS / "run-report.png", 1500, scratch)
        sweep = scratch / "sweep"
        runner("-m", "parallel=1,2,4,8,16", "source.count=200", "task.seconds=0.02",
               "progress=off", f"hydra.sweep.dir={sweep}", cwd=scratch)  # fmt: skip
        screenshot(sweep / "sweep.html", DOCS / "sweep-report.png", 1500, scratch)


if __name__ == "__main__":
    main()
