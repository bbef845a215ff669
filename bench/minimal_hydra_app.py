"""The start-up baseline: the smallest useful ``@hydra.main`` app (see bench_startup.py)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="minimal_conf", config_name="config")
def app(cfg: DictConfig) -> None:
    print(cfg.message)


if __name__ == "__main__":
    app()
