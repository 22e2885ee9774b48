"""Routes live where their URLs say, and the README lists every one of them."""

import importlib
import re
from pathlib import Path

from fastapi.routing import APIRoute

from endpoints.app import create_app

ROOT = Path(__file__).resolve().parent.parent
ROUTERS = sorted(p.stem for p in (ROOT / "endpoints" / "routers").glob("[!_]*.py"))
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _resource(path: str) -> str:
    """The last word of the path that names a router module: `/profiles/{id}/trainings` →
    `trainings`, `/trainings/{id}/cancel` → `trainings`, `/profiles/{id}/dataset/files` →
    `dataset`."""
    return [part for part in path.strip("/").split("/") if part in ROUTERS][-1]


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_each_route_is_in_the_module_and_tag_its_path_names() -> None:
    for name in ROUTERS:
        routes = importlib.import_module(f"endpoints.routers.{name}").router.routes
        assert routes, name
        for route in routes:
            assert isinstance(route, APIRoute)
            assert _resource(route.path) == name, (route.path, name)
            assert route.tags == [name], (route.path, route.tags)


def test_the_readme_lists_every_route() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n## API\n", 1)[1].split("\n## ", 1)[0]
    listed = {
        (method, _shape(path))
        for method, path in re.findall(r"`([A-Z]+) (/[^`\s]*)`", table)
        if method in METHODS
    }
    paths = create_app().openapi()["paths"]
    served = {
        (method.upper(), _shape(path))
        for path, operations in paths.items()
        for method in operations
        if method.upper() in METHODS
    }
    assert listed == served
