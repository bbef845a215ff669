"""A real headless Chromium for tests of the HTML pages runner writes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    """The browser's path; `make test` installs Debian's chromium when it is missing."""
    found = next((path for name in NAMES if (path := shutil.which(name))), None)
    if found is None:
        pytest.fail("no chromium on PATH: `make test` installs it (apt-get install chromium)")
    return found


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions", f"--user-data-dir={cwd / 'profile'}", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def rendered_dom(page: Path, scratch: Path) -> str:
    """The page's DOM after Chromium loaded and rendered it from disk."""
    done = _run("--dump-dom", page.resolve().as_uri(), cwd=scratch)
    assert done.returncode == 0 and "<body" in done.stdout, done.stderr[-2000:]
    return done.stdout


def screenshot(page: Path, png: Path, width: int = 1000, height: int = 1400) -> Path:
    """A PNG of the page as Chromium draws it."""
    done = _run(f"--window-size={width},{height}", f"--screenshot={png.resolve()}",
                page.resolve().as_uri(), cwd=png.parent)  # fmt: skip
    assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]
    return png
