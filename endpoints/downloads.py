"""Download links in the format asked for (`?format=`): the routers name the stored result,
its download name and its title; `pipeline.encode` makes and keeps the encoding."""

from pathlib import PurePosixPath

from pipeline import encode
from pipeline.services import Services
from schemas.conversions import DownloadLink
from schemas.downloads import DownloadFormat


def format_key(services: Services, key: str, fmt: DownloadFormat | None, title: str) -> str:
    """The key to sign: the stored result itself, or its encoding in `fmt`."""
    return key if fmt is None else encode.ensure_encoded(services.storage, key, fmt, title)


def result_link(
    services: Services, key: str, stem: str, fmt: DownloadFormat | None, title: str
) -> DownloadLink:
    """A short-lived link to the result at `key` as `fmt`, offered as `stem` + extension."""
    seconds = services.settings.download_url_seconds
    safe = PurePosixPath(encode.download_name(stem, fmt)).name.replace('"', "")
    url = services.storage.presign_get(format_key(services, key, fmt, title), seconds, safe)
    return DownloadLink(url=url, filename=safe, expires_in=seconds)
