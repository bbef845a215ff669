"""``python -m runner.plugins``: every installed plugin, where it comes from, whether it
loads (the listing is :mod:`runner.config.listing`)."""

from runner.config.listing import main

if __name__ == "__main__":
    raise SystemExit(main())
