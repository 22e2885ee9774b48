"""Short-lived download links that answers carry (a dataset file, a conversion's input or
result): one place that makes the file name safe to quote in the link's
`Content-Disposition` and says how long the link lives."""

from pathlib import PurePosixPath

from pipeline.services import Services
from schemas.conversions import DownloadLink


def download_link(services: Services, key: str, filename: str) -> DownloadLink:
    """A GET link to `key` that saves as `filename` (its last path part, without quotes)."""
    seconds = services.settings.download_url_seconds
    safe = PurePosixPath(filename).name.replace('"', "")
    url = services.storage.presign_get(key, seconds, safe)
    return DownloadLink(url=url, filename=safe, expires_in=seconds)
