"""Short-lived links that answers carry: download links (a dataset file, a conversion's input
or result), one place that makes the file name safe to quote in the link's
`Content-Disposition` and says how long the link lives; and the PUT ticket of an input."""

from pathlib import PurePosixPath

from pipeline.services import Services
from pipeline.storage import PresignedUpload
from schemas.conversions import DownloadLink, InputUpload


def download_link(services: Services, key: str, filename: str) -> DownloadLink:
    """A GET link to `key` that saves as `filename` (its last path part, without quotes)."""
    seconds = services.settings.download_url_seconds
    safe = PurePosixPath(filename).name.replace('"', "")
    url = services.storage.presign_get(key, seconds, safe)
    return DownloadLink(url=url, filename=safe, expires_in=seconds)


def upload_ticket(upload: PresignedUpload) -> InputUpload:
    """Where and how the client PUTs an input (a conversion's, an instant reference or clip)."""
    return InputUpload(upload_url=upload.url, headers=upload.headers, expires_at=upload.expires_at)
