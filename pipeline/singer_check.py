"""Asking for the one-singer check after a probe: a `singers` worker for the profile
(`python -m gpu singers <profile_id>` locally, a Modal function in production). Torch-free:
the embedding itself runs in `gpu.singers`.

The check is advisory: if it cannot be started, the file stays ready and the next ready
file of the profile asks again (the worker embeds every file that has no embedding yet).
"""

import logging

from pipeline.dispatch import Dispatcher
from pipeline.settings import Settings
from schemas.profiles import DatasetFile

log = logging.getLogger(__name__)
KIND = "singers"


def request_singer_check(
    settings: Settings, dispatcher: Dispatcher, row: DatasetFile | None
) -> str | None:
    if not settings.singer_check or row is None or row.status != "ready":
        return None
    try:
        return dispatcher.spawn(KIND, row.profile_id)
    except Exception:
        log.warning("could not start the singer check of profile %s", row.profile_id)
        return None
