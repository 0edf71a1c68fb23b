"""What every experiment gets: the store, the preset, the seeds, data, trained runs and cached probes.

Runs are typed `RunSpec`s trained once into ``DIR/runs/<spec.dirname()>`` (resumable;
the store's ``run`` unit is keyed by the spec's fingerprint). Curves are evaluated with
the reproduce store as probe store, so a killed ``reproduce`` never re-evaluates a
finished point and two claims asking for the same curve share it.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .. import data as data_registry
from .. import probe
from ..checkpoint import load_checkpoint
from ..store import RunStore
from ..train import run_training
from .presets import Preset
from .runs import RunSpec

__all__ = ["Context", "RANGE_LADDER", "RANGE_RISE", "CALIBRATION_SEED"]

# Probe half-range rule (fixed before any run): the smallest R on this ladder at which the
# training loss at w - R u or w + R u exceeds the centre's by RANGE_RISE nats, measured along a
# calibration direction (seed 10_000) that no experiment uses as a measured direction.
RANGE_LADDER = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
RANGE_RISE = 1.0
CALIBRATION_SEED = 10_000


@contextmanager
def _run_lock(path: Path) -> Iterator[None]:
    """A blocking exclusive lock on ``path`` (released when the holder exits, even by ``kill -9``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Context:
    def __init__(self, out_dir: str | Path, preset: Preset, store: RunStore, base_seed: int, progress: bool = True,
                 log: Callable[[str], None] = print):
        self.out_dir = Path(out_dir)
        self.preset = preset
        self.store = store
        self.seeds = tuple(base_seed + i for i in range(preset.n_seeds))
        self.progress = progress
        self.log = log
        self.device = preset.device
        self._data: dict[str, data_registry.DataSplits] = {}

    # -- data and runs -------------------------------------------------------------
    def data(self, name: str) -> data_registry.DataSplits:
        if name not in self._data:
            kw = self.preset.dataset_kwargs if data_registry.needs_files(name) else {}
            self._data[name] = data_registry.load(name, **kw).to(self.device)
        return self._data[name]

    def spec(self, role: str, dataset: str, seed: int, **changes: Any) -> RunSpec:
        """The preset's run for ``role`` (``bn``, ``nobn`` or a model name) on ``dataset`` with ``seed``."""
        model = self.preset.models[dataset].get(role, role)
        return RunSpec(model, dataset, seed, **{**self.preset.train, **changes})

    def run_dir(self, spec: RunSpec) -> Path:
        return self.out_dir / "runs" / spec.dirname()

    def train(self, spec: RunSpec) -> Path:
        """Train ``spec`` unless finished (a killed run resumes; its fingerprint is checked); its directory."""
        key = spec.fingerprint()
        if self.store.has_unit("run", key):
            return self.run_dir(spec)
        with _run_lock(self.out_dir / "runs" / f"{spec.dirname()}.lock"):  # ``reproduce --jobs``: train once
            if not self.store.has_unit("run", key):
                self.log(f"training {spec.label()}")
                metrics = run_training(spec.train_config(self.device), self.run_dir(spec), resume=True,
                                       progress=self.progress, log=lambda s: None)
                self.store.put_unit("run", key, {"spec": spec.to_dict(), "dir": spec.dirname(), "final": metrics["final"],
                                                 "epochs": metrics["epochs"]})
        return self.run_dir(spec)

    def final(self, spec: RunSpec) -> dict[str, Any]:
        self.train(spec)
        return self.store.get_unit("run", spec.fingerprint())["final"]

    def history(self, spec: RunSpec) -> list[dict[str, Any]]:
        self.train(spec)
        return self.store.get_unit("run", spec.fingerprint())["epochs"]

    def model(self, spec: RunSpec, checkpoint: str = "sgd") -> torch.nn.Module:
        model, _ = load_checkpoint(self.train(spec) / "checkpoints" / f"{checkpoint}.pt")
        return model.to(self.device)

    # -- probing -------------------------------------------------------------------
    def curve(self, model, data, direction, alphas, splits=("train",), **kw) -> dict[str, Any]:
        return probe.curve(model, data, direction, alphas, splits=splits, store=self.store, progress=False, **kw)

    def points(self, model, data, directions, coords, splits=("train",), **kw) -> dict[str, Any]:
        return probe.points(model, data, directions, coords, splits=splits, store=self.store, progress=False, **kw)

    def probe_range(self, spec: RunSpec, checkpoint: str = "sgd", kind: str = "uniform") -> float:
        """The calibrated probe half-range R of a solution (rule: `RANGE_LADDER`, `RANGE_RISE`)."""
        unit = f"{spec.fingerprint()}/{checkpoint}/{kind}"
        cached = self.store.get_unit("range", unit)
        if cached is not None:
            return cached["R"]
        model = self.model(spec, checkpoint)
        u = probe.make_direction(kind, model, seed=CALIBRATION_SEED)
        coords = [[0.0]] + [[s * r] for r in RANGE_LADDER for s in (-1.0, 1.0)]
        loss = self.points(model, self.data(spec.dataset), [u], coords)["splits"]["train"]["loss"]
        R = RANGE_LADDER[-1]
        for i, r in enumerate(RANGE_LADDER):
            lo, hi = loss[1 + 2 * i], loss[2 + 2 * i]
            if not (lo == lo and hi == hi) or max(lo, hi) > loss[0] + RANGE_RISE:  # NaN counts as risen
                R = r
                break
        self.store.put_unit("range", unit, {"R": R, "ladder": list(RANGE_LADDER), "rise": RANGE_RISE, "losses": loss})
        return R
