"""Running items: the run, the safe call, its policies, signals and commands."""
