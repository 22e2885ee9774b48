"""What a conversion worker keeps loaded between jobs: one ContentVec per process and the
last few voice models, keyed by model version.

The fork's `Svc` loads ContentVec in its constructor; `share_contentvec` makes the fork's
own `get_hubert_model` return one instance per device instead (an adapter in our code; the
installed package is not edited). Models are downloaded from the bucket once per container.
"""

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu.conversion.inference import load_svc
from pipeline.storage import Storage
from schemas.jobs import ModelVersionRow

LOADS = {"contentvec": 0, "model": 0}  # counted, so a warm cache can be measured


def share_contentvec() -> None:
    from so_vits_svc_fork import utils

    if getattr(utils.get_hubert_model, "shared", False):
        return
    original: Callable[..., Any] = utils.get_hubert_model
    loaded: dict[tuple[str, bool], Any] = {}

    def get_hubert_model(device: Any, final_proj: bool = True) -> Any:
        key = (str(device), final_proj)
        if key not in loaded:
            LOADS["contentvec"] += 1
            loaded[key] = original(device, final_proj)
        return loaded[key]

    get_hubert_model.shared = True  # type: ignore[attr-defined]
    utils.get_hubert_model = get_hubert_model


class ModelCache:
    def __init__(self, storage: Storage, directory: Path, device: str, capacity: int = 3) -> None:
        self.storage = storage
        self.directory = directory
        self.device = device
        self.capacity = capacity
        self._models: OrderedDict[str, Any] = OrderedDict()
        share_contentvec()

    def get(self, version: ModelVersionRow) -> Any:
        """The loaded `Svc` for a model version (its weights, config and cluster model
        fetched once)."""
        key = str(version.id)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        folder = self.directory / key
        folder.mkdir(parents=True, exist_ok=True)
        files = {"model.pth": version.model_key, "config.json": version.config_key}
        if version.cluster_key is not None:
            files["cluster.pt"] = version.cluster_key
        for name, object_key in files.items():
            if not (folder / name).exists():
                partial = folder / f"{name}.part"
                self.storage.download_file(object_key, partial)
                partial.rename(folder / name)
        cluster = folder / "cluster.pt" if "cluster.pt" in files else None
        ratio = version.cluster_ratio
        svc = load_svc(folder / "model.pth", folder / "config.json", self.device, cluster, ratio)
        LOADS["model"] += 1
        self._models[key] = svc
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
        return svc
