"""What a Modal image holds, read from its definition rather than restated by hand.

The Modal client builds an image as a chain of lazy layers; each keeps, in its loader's
closure, its base image, the function that writes its Dockerfile lines and the mount of
local files it copies (or, for `add_local_*` without `copy`, the mount attached when a
container starts). Walking that chain gives the files a container sees (and where), the
`ENV`s, the `WORKDIR` and the `RUN` steps with the environment each runs in, so the container
test follows modal_app.py instead of a copy of it.
"""

import inspect
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import modal
from modal._image import LATEST_IMAGE_BUILDER_VERSION
from modal._utils.async_utils import synchronizer


@dataclass
class BuildStep:
    command: str
    env: dict[str, str]
    workdir: str
    after_local_files: bool  # runs on files from the repository (not a pip/apt layer)


@dataclass
class ImageContents:
    files: dict[str, Path] = field(default_factory=dict)  # container path → local file
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"  # the python base images set none
    steps: list[BuildStep] = field(default_factory=list)


def _mount_files(mount: Any) -> dict[str, Path]:
    return {
        str(remote): Path(local)
        for entry in mount.entries
        for local, remote in entry.get_files_to_upload()
    }


def _layers(image: modal.Image) -> list[dict[str, Any]]:
    """The image's layers, base first, as the closure variables of their loaders."""
    layers = []
    current = synchronizer._translate_in(image)
    while current is not None:
        scope = inspect.getclosurevars(current._load).nonlocals
        layers.append(scope)
        bases = scope.get("base_images") or {}
        current = scope.get("base_image") or bases.get("base")
    return layers[::-1]


def read_image(image: modal.Image) -> ImageContents:
    contents = ImageContents()
    copied = False
    for layer in _layers(image):
        if "mount" in layer:  # add_local_* without copy: attached at container start
            contents.files |= _mount_files(layer["mount"])
            continue
        mount_fn = layer.get("context_mount_function")
        mount = mount_fn(LATEST_IMAGE_BUILDER_VERSION) if mount_fn else None
        dockerfile = layer["dockerfile_function"](LATEST_IMAGE_BUILDER_VERSION)
        for line in dockerfile.commands:
            op, _, rest = line.partition(" ")
            if op == "ENV":
                key, _, value = rest.partition("=")
                contents.env[key] = shlex.split(value)[0] if value else ""
            elif op == "WORKDIR":
                contents.workdir = shlex.split(rest)[0]
            elif op == "COPY" and mount is not None:
                assert rest == ". /", f"unexpected COPY {rest!r}"  # mounts carry full paths
                contents.files |= _mount_files(mount)
                copied = True
            elif op == "RUN":
                contents.steps.append(
                    BuildStep(rest, dict(contents.env), contents.workdir, after_local_files=copied)
                )
    return contents


def app_file_mounts(function: Any) -> dict[str, Path]:
    """Where Modal puts the app file itself (a mount on every function of the app)."""
    files: dict[str, Path] = {}
    for mount in function._spec_.mounts:
        mount = synchronizer._translate_in(mount)
        if mount.is_local():  # the other is Modal's own client, already in every image
            files |= _mount_files(mount)
    return files


def registered(function: Any) -> dict[str, Any]:
    """What a function or class was registered with (timeout, retries, schedule, secrets…),
    read from its loader: the values `modal deploy` would send."""
    target = synchronizer._translate_in(function)
    if hasattr(target, "_get_class_service_function"):
        target = target._get_class_service_function()
    return inspect.getclosurevars(target._load).nonlocals
