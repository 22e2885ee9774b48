"""Logging for worker processes, set up before the fork is imported (its package root
installs a RichHandler and captures warnings otherwise)."""

import logging
import os
import warnings

from pipeline import redact


def setup() -> None:
    logging.basicConfig(
        level=os.environ.get("VC_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    redact.install()  # no log line of a worker names a person (pipeline/redact.py)
    for noisy in ("matplotlib", "numba", "urllib3", "httpx", "fsspec", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
