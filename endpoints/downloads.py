"""Download links in the format asked for (`?format=`): the routers name the stored result,
its download name and its title; `pipeline.encode` makes and keeps the encoding."""

from endpoints.links import download_link
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
    return download_link(
        services, format_key(services, key, fmt, title), encode.download_name(stem, fmt)
    )
