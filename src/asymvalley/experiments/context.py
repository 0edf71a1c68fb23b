"""What every experiment gets: the output directory's store, the preset, shared
training runs (trained once, resumable) and cached probes.

Shared runs (``ctx.run(key)``) live in ``DIR/runs/<key>``: ``main`` (the preset's
main model), ``nobn`` (the same network without BN, Appendix H), one run per
extra model and seed (Section 3.2), ``large_batch`` and ``small_batch``
(Appendix G: small-batch SGD started from the large-batch solution) and
``two_param`` (Appendix A). Curves are evaluated with the reproduce store as
probe store, so a killed ``reproduce`` never re-evaluates a finished point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from .. import data as data_registry
from .. import probe
from ..checkpoint import load_checkpoint
from ..store import RunStore
from ..train import TrainConfig, run_training
from .presets import Preset

__all__ = ["Context", "RANGE_LADDER", "RANGE_RISE"]

# Probe half-range rule (fixed before any run): the smallest R on this ladder at which the
# training loss at w - R u or w + R u exceeds the centre's by RANGE_RISE nats, measured along a
# calibration direction (seed 10_000) that no experiment uses as a measured direction.
RANGE_LADDER = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
RANGE_RISE = 1.0
CALIBRATION_SEED = 10_000


class Context:
    def __init__(self, out_dir: str | Path, preset: Preset, store: RunStore, progress: bool = True,
                 log: Callable[[str], None] = print):
        self.out_dir = Path(out_dir)
        self.preset = preset
        self.store = store
        self.progress = progress
        self.log = log
        self._data: dict[str, data_registry.DataSplits] = {}
        self.device = preset.train.get("device", "cpu")  # models and data live here while probing

    # -- data and runs -------------------------------------------------------------
    def data(self, name: str | None = None) -> data_registry.DataSplits:
        name = name or self.preset.datasets[0]
        if name not in self._data:
            kw = self.preset.dataset_kwargs if data_registry.needs_files(name) else {}
            self._data[name] = data_registry.load(name, **kw).to(self.device)
        return self._data[name]

    def resolve(self, key: str) -> str:
        """``main``, ``bn``, ``nobn`` are aliases of ``<model>@<dataset>@<seed>`` keys (first data set and seed)."""
        p = self.preset
        alias = {"main": p.main_model, "bn": p.bn_pair[0], "nobn": p.bn_pair[1]}
        if key in alias:
            return f"{alias[key]}@{p.datasets[0]}@{p.seeds[0]}"
        return key

    def run_config(self, key: str) -> TrainConfig:
        p = self.preset
        key = self.resolve(key)
        ds = p.datasets[0]
        base = dict(dataset=ds, seed=p.seeds[0], **p.train)
        if key == "large_batch":
            return TrainConfig(model=p.main_model, **{**base, "batch_size": p.large_batch, "sgd_after_swa_epochs": 0})
        if key == "small_batch":
            start = str(self.run_dir("large_batch") / "checkpoints" / "sgd.pt")
            return TrainConfig(model=p.main_model, dataset=ds, seed=p.seeds[0], epochs=p.small_batch_epochs, swa_start=0,
                               lr=0.01, swa_lr=0.01, batch_size=p.small_batch, sgd_after_swa_epochs=0,
                               init_checkpoint=start, device=p.train.get("device", "cpu"))
        if key == "two_param":
            return TrainConfig(model="two_param", dataset="teacher2", seed=p.seeds[0], epochs=20, swa_start=15, lr=0.05,
                               swa_lr=0.01, weight_decay=0.0, sgd_after_swa_epochs=0)
        model, dataset, seed = key.split("@")  # "<model>@<dataset>@<seed>"
        return TrainConfig(model=model, **{**base, "dataset": dataset, "seed": int(seed)})

    def run_dir(self, key: str) -> Path:
        return self.out_dir / "runs" / self.resolve(key)

    def run(self, key: str) -> Path:
        """Train run ``key`` if it is not finished yet (resuming a killed one); returns its directory."""
        key = self.resolve(key)
        if key == "small_batch":
            self.run("large_batch")
        cfg = self.run_config(key)
        if not self.store.has_unit("run", key):
            self.log(f"training {key}: {cfg.model} on {cfg.dataset}")
            metrics = run_training(cfg, self.run_dir(key), resume=True, progress=self.progress, log=lambda s: None)
            self.store.put_unit("run", key, {"config": cfg.to_dict(), "final": metrics["final"]})
        return self.run_dir(key)

    def run_final(self, key: str) -> dict[str, Any]:
        self.run(key)
        return self.store.get_unit("run", self.resolve(key))["final"]

    def model(self, key: str, checkpoint: str = "sgd") -> torch.nn.Module:
        model, _ = load_checkpoint(self.run(key) / "checkpoints" / f"{checkpoint}.pt")
        return model.to(self.device)

    def state(self, key: str, checkpoint: str) -> dict[str, torch.Tensor]:
        return self.model(key, checkpoint).state_dict()

    # -- probing -------------------------------------------------------------------
    def curve(self, model, direction, alphas, splits=("train", "test"), data=None, **kw) -> dict[str, Any]:
        return probe.curve(model, data or self.data(), direction, alphas, splits=splits, store=self.store,
                           progress=self.progress, **kw)

    def points(self, model, directions, coords, splits=("train",), data=None, **kw) -> dict[str, Any]:
        return probe.points(model, data or self.data(), directions, coords, splits=splits, store=self.store,
                            progress=self.progress, **kw)

    def probe_range(self, key: str, checkpoint: str = "sgd", kind: str = "uniform") -> float:
        """The calibrated probe half-range R for run ``key`` (rule: `RANGE_LADDER`, `RANGE_RISE`)."""
        unit = f"{self.resolve(key)}/{checkpoint}/{kind}"
        cached = self.store.get_unit("range", unit)
        if cached is not None:
            return cached["R"]
        model = self.model(key, checkpoint)
        u = probe.make_direction(kind, model, seed=CALIBRATION_SEED)
        coords = [[0.0]] + [[s * r] for r in RANGE_LADDER for s in (-1.0, 1.0)]
        res = self.points(model, [u], coords, splits=("train",), data=self.data(self.run_config(key).dataset))
        loss = res["splits"]["train"]["loss"]
        centre = loss[0]
        R = RANGE_LADDER[-1]
        for i, r in enumerate(RANGE_LADDER):
            lo, hi = loss[1 + 2 * i], loss[2 + 2 * i]
            if not (lo == lo and hi == hi) or max(lo, hi) > centre + RANGE_RISE:  # NaN counts as risen
                R = r
                break
        self.store.put_unit("range", unit, {"R": R, "ladder": list(RANGE_LADDER), "rise": RANGE_RISE, "losses": loss})
        return R

    def result(self, name: str) -> dict[str, Any]:
        """The stored result of experiment ``name`` (listed in the caller's ``requires``)."""
        res = self.store.get_unit("experiment", name)
        if res is None:
            raise RuntimeError(f"experiment {name} has not been computed; list it in `requires`")
        return res
