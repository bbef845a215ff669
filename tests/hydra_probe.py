"""A Hydra callback for tests: writes each job's return value next to its run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback


class ReturnProbe(Callback):
    """What a sweeper that optimises would read: the job's return value."""

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        # Beside the folder, not in it: a run refused for its config leaves no folder.
        folder = Path(config.hydra.runtime.output_dir)
        returned = folder.with_name(f"{folder.name}.return_value.json")
        returned.write_text(json.dumps(job_return.return_value))
