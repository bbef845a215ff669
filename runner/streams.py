"""``python -m runner.streams RUN [ID]``: an item's stdout and stderr from a run folder (the
reader is :mod:`runner.record.streams`)."""

from runner.record.streams import main

if __name__ == "__main__":
    raise SystemExit(main())
