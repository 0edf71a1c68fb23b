"""A resumable SGD + SWA + SGD-after-SWA training run (design §5, §7).

Under ``torchrun`` the model is wrapped in `DistributedDataParallel` and each rank
takes every K-th sample of each global batch (`train_batches`); the SWA average, its
``update_bn`` pass and evaluations run identically on every rank (weights are equal
after each synchronised step), and only rank 0 writes.

Commit protocol per epoch: trajectory snapshot, then (at the end of a phase)
final checkpoints, then the atomic ``state.pt`` (the commit point: weights,
optimizer, SWA average, history), then the store's epoch unit and
``metrics.json``. A run killed at any moment resumes from ``state.pt`` and,
because every epoch's shuffling is seeded by ``(seed, epoch)``, ends with
checkpoints bitwise equal to an uninterrupted run on CPU.
"""

from __future__ import annotations

import json
import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, update_bn

from .. import data as data_registry
from .. import models as model_registry
from ..checkpoint import build_model, read_checkpoint, safe_torch_load, save_checkpoint, torch_bytes
from ..dist import barrier, init_from_env, rank_world
from ..errors import UsageError
from ..io import atomic_write_bytes, atomic_write_text, check_writable, directory_lock, json_text
from ..progress import progress_bar
from ..store import STORE_NAME, RunStore
from .config import TrainConfig
from .fingerprint import config_diff, fingerprint, option_names
from .loop import epoch_generator, evaluate, train_batches, train_epoch
from .schedule import swa_learning_rate

__all__ = ["run_training", "prepare_run", "final_metrics", "training_data"]

FINAL_NAMES = ("sgd", "swa", "sgd_after_swa")


def _memory_format(model: nn.Module, device: str) -> torch.memory_format:
    has_conv2d = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return torch.channels_last if (device.startswith("cuda") and has_conv2d) else torch.contiguous_format


def prepare_run(cfg: TrainConfig, out: str | Path, resume: bool) -> tuple[Path, data_registry.DataSplits, nn.Module]:
    """Validate everything (names, output directory, device) before anything is written."""
    out = Path(out)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but no CUDA device is available; use --device cpu")
    if cfg.device not in ("cpu",) and not cfg.device.startswith("cuda"):
        raise UsageError(f"unknown --device {cfg.device!r}; use cpu or cuda")
    model_registry.MODELS.get(cfg.model)  # unknown names fail here, before any data work
    data = data_registry.load(cfg.dataset, **cfg.dataset_kwargs)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; choose another path")
    check_writable(out, "--out", directory=True)
    if out.is_dir():
        check_run_dir(out, cfg, resume)  # early, on every rank; again under the lock before anything is written
    data = training_data(cfg, data)[0].to(cfg.device)
    torch.manual_seed(cfg.seed)
    model = model_registry.create(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes, **cfg.model_kwargs)
    if cfg.init_checkpoint:  # start from given weights (e.g. small-batch SGD from a large-batch solution, Appendix G)
        ckpt = read_checkpoint(cfg.init_checkpoint)
        if ckpt["model"] != cfg.model:
            raise UsageError(f"--init-checkpoint {cfg.init_checkpoint} is a {ckpt['model']!r} checkpoint, not {cfg.model!r}; pass a checkpoint of the same model")
        model = build_model(ckpt, cfg.init_checkpoint)
    return out, data, model.to(cfg.device)


STATE_KEYS = ("epoch", "model", "optimizer", "swa", "history", "finals")


def _load_state(out: Path) -> dict[str, Any] | None:
    path = out / "state.pt"
    if not path.exists():
        return None
    state = safe_torch_load(path, "training state")
    if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
        raise UsageError(f"training state {path} is not an asymvalley training state; restore it, or delete it to restart the run")
    return state


def _refuse_other_config(out: Path, cfg: TrainConfig, stored: dict[str, Any]) -> None:
    diff = config_diff(stored, cfg)
    if diff:
        raise UsageError(f"--resume with different settings than the run in {out} (differs in: {option_names(diff)}); "
                         f"repeat the original command")


def check_run_dir(out: Path, cfg: TrainConfig, resume: bool, load_state: bool = False) -> dict[str, Any] | None:
    """Refuse a run directory that is not this configuration's (returns the loaded ``state.pt`` with ``load_state``).

    Without ``--resume`` the directory must be empty. With it, every artefact that
    resumes (the store, ``state.pt``) must hold this configuration; a directory
    with files but neither of them recorded cannot be verified and is refused.
    """
    entries = [p.name for p in out.iterdir()]
    if not resume:
        if entries:
            raise UsageError(f"output directory {out} is not empty; pass --resume to continue that run or choose a new --out")
        return None
    stored = None
    if (out / STORE_NAME).exists():
        with RunStore(out, create=False) as st:  # closed at once: an open connection leaves -wal/-shm files behind
            stored = st.get_meta("train_config")
            if stored is None and st.get_meta("preset") is not None:
                raise UsageError(f"{out} holds a `reproduce` result, not a training run; choose a new --out")
    if stored is not None:
        _refuse_other_config(out, cfg, stored)
    state = _load_state(out) if (load_state or stored is None) else None
    if state is not None and "config" in state:
        _refuse_other_config(out, cfg, json.loads(state["config"]))
    elif state is not None and stored is None:
        raise UsageError(f"cannot verify the settings of the run in {out} (its {STORE_NAME} is missing and state.pt records none); "
                         f"restore {STORE_NAME}, or choose a new --out")
    elif stored is None and any(not n.startswith(STORE_NAME) for n in entries):
        raise UsageError(f"cannot --resume {out}: it holds files but no training run ({STORE_NAME} and state.pt record none); "
                         f"choose a new --out")
    return state


def training_data(cfg: TrainConfig, data: data_registry.DataSplits | None = None):
    """The run's data as training saw it: ``(splits, validation or None)``; with ``val_fraction`` the held-out
    samples are removed from the training split (`asymvalley.data.validation.holdout`)."""
    from ..data.validation import holdout

    data = data if data is not None else data_registry.load(cfg.dataset, **cfg.dataset_kwargs)
    if cfg.n_train or cfg.n_test:
        data = data.subset(cfg.n_train, cfg.n_test)
    return holdout(data, cfg.val_fraction, cfg.seed) if cfg.val_fraction else (data, None)


def final_metrics(model: nn.Module, data: data_registry.DataSplits) -> dict[str, float]:
    tr_loss, tr_acc = evaluate(model, data, "train")
    te_loss, te_acc = evaluate(model, data, "test")
    return {"train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc}


def run_training(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume) a run into directory ``out``; returns the ``metrics.json`` dict.

    Rank 0 holds an exclusive lock on ``out`` for the whole run: a second ``train``
    into the same directory gets one line and writes nothing.
    """
    distributed = init_from_env(cfg.device)
    rank, world = rank_world()
    out, data, model = prepare_run(cfg, out, resume)
    with ExitStack() as held:
        state = None
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            held.enter_context(directory_lock(out))
            state = check_run_dir(out, cfg, resume, load_state=True)  # under the lock: nobody else writes here now
        barrier()  # rank 0 validated and holds the output directory before anyone writes into it
        if rank != 0 and resume:
            state = _load_state(out)
        return _train(cfg, out, data, model, state, distributed, (rank, world), progress, log)


def _make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float | None = None) -> torch.optim.SGD:
    """SGD with the run's momentum and weight decay at ``lr`` (default: the main phase's initial lr)."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr if lr is None else lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


class _TrainSession:
    """The mutable state of one training run and its per-epoch steps (see the commit protocol above)."""

    def __init__(self, cfg: TrainConfig, out: Path, data, model: nn.Module, distributed: bool, shard: tuple[int, int]):
        self.cfg, self.out, self.data, self.model, self.shard = cfg, out, data, model, shard
        self.distributed, self.main = distributed, shard[0] == 0
        self.mem_fmt = _memory_format(model, cfg.device)
        self.model = model.to(memory_format=self.mem_fmt)
        self.trained = DistributedDataParallel(self.model) if distributed else self.model
        self.kwargs = {"input_shape": list(data.input_shape), "num_classes": data.num_classes, **cfg.model_kwargs}
        self.config, self.config_fp = cfg.to_dict(), fingerprint(cfg.to_dict())
        self.store = RunStore(out) if self.main else None
        self.optimizer = _make_optimizer(self.model, cfg)
        self.swa_model = AveragedModel(self.model)
        self.history: list[dict[str, Any]] = []
        self.finals: dict[str, dict[str, float]] = {}
        self.start = 0

    def record_config(self) -> None:
        """The configuration and its fingerprint in the store (checked on every resume)."""
        if not self.main:
            return
        with self.store.transaction() as conn:
            self.store.set_meta("train_config", self.config, conn=conn)
            self.store.set_meta("train_fingerprint", self.config_fp, conn=conn)
            if "validation" in self.data.info:  # the held-out split, named so `valley` can check it rebuilds the same samples
                self.store.set_meta("validation", self.data.info["validation"], conn=conn)

    def save(self, name: str, state_dict: dict) -> None:
        """A named checkpoint (rank 0 only), registered in the store with its hash."""
        if not self.main:
            return
        rel = f"checkpoints/{name}.pt"
        sha = save_checkpoint(self.out / rel, self.cfg.model, self.kwargs, self.cfg.dataset, state_dict)
        self.store.put_checkpoint(name, rel, sha)

    def restore(self, state: dict[str, Any] | None, log: Callable[[str], None]) -> None:
        """Continue from ``state.pt`` (finishing its store writes), or save the initial weights of a fresh run."""
        cfg = self.cfg
        if state is None:
            if not (self.out / "checkpoints" / "epoch_000.pt").exists():
                self.save("epoch_000", self.model.state_dict())
            return
        self.model.load_state_dict(state["model"])
        if state["epoch"] > cfg.epochs:  # in the SGD-after-SWA phase: fresh optimizer at constant lr
            self.optimizer = _make_optimizer(self.model, cfg, cfg.sgd_after_swa_lr)
        self.optimizer.load_state_dict(state["optimizer"])
        self.swa_model.load_state_dict(state["swa"])
        self.history, self.finals = json.loads(state["history"]), json.loads(state["finals"])
        self.start = int(state["epoch"])
        log(f"resuming {self.out} after epoch {self.start} of {cfg.total_epochs}")
        if self.main:  # killed between the commit point and the store / metrics.json writes: finish those writes
            _sync_store(self.store, self.out, self.history, self.finals)

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch of SGD (and the SWA update in its phase); refuses a diverged run. Returns the history row."""
        cfg, model = self.cfg, self.model
        main_phase = epoch < cfg.epochs
        lr = swa_learning_rate(epoch, cfg.lr, cfg.swa_lr, cfg.swa_start) if main_phase else cfg.sgd_after_swa_lr
        tr_loss, tr_acc = train_epoch(self.trained, self.optimizer, self.data, cfg.batch_size,
                                      epoch_generator(cfg.seed, epoch), lr, self.mem_fmt, shard=self.shard)
        if not math.isfinite(tr_loss) or not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            last = self.out / "checkpoints" / f"epoch_{epoch:03d}.pt"
            raise UsageError(f"training diverged in epoch {epoch + 1} (loss {tr_loss}); lower --lr and rerun; "
                             f"the last good weights are {last}")
        if main_phase and epoch >= cfg.swa_start:
            self.swa_model.update_parameters(model)
        te_loss, te_acc = evaluate(model, self.data, "test")
        row = {"epoch": epoch + 1, "lr": lr, "phase": "sgd" if main_phase else "sgd_after_swa", "train_loss": tr_loss,
               "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc, "swa_averaged": int(self.swa_model.n_averaged)}
        self.history.append(row)
        return row

    def finish_phases(self, epoch: int) -> None:
        """The epoch's snapshot; at the end of a phase the final checkpoints (SGD, SWA, SGD-after-SWA)."""
        cfg, model = self.cfg, self.model
        self.save(f"epoch_{epoch + 1:03d}", model.state_dict())
        if epoch + 1 == cfg.epochs:
            self.finals.update(_finish_swa(model, self.swa_model, self.data, cfg, self.save))
            self.optimizer = _make_optimizer(model, cfg, cfg.sgd_after_swa_lr)
            if self.distributed:  # a fresh DDP wrapper for the new phase (same module, new optimizer)
                self.trained = DistributedDataParallel(model)
        if epoch + 1 == cfg.total_epochs and cfg.sgd_after_swa_epochs > 0:
            self.save("sgd_after_swa", model.state_dict())
            self.finals["sgd_after_swa"] = final_metrics(model, self.data)

    def commit(self, epoch: int) -> None:
        """The atomic ``state.pt`` (the epoch's commit point), then the store and ``metrics.json``; rank 0 only."""
        if not self.main:
            return
        state = {"epoch": epoch + 1, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "swa": self.swa_model.state_dict(), "history": json.dumps(self.history),
                 "finals": json.dumps(self.finals), "config": json.dumps(self.config, sort_keys=True),
                 "fingerprint": self.config_fp}
        atomic_write_bytes(self.out / "state.pt", torch_bytes(state))
        _sync_store(self.store, self.out, self.history, self.finals)


def _train(cfg: TrainConfig, out: Path, data, model: nn.Module, state: dict[str, Any] | None, distributed: bool,
           shard: tuple[int, int], progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Train from ``state`` (or from scratch) to the end of the SGD-after-SWA phase, committing every epoch."""
    session = _TrainSession(cfg, out, data, model, distributed, shard)
    session.record_config()
    session.restore(state, log)
    bar = progress_bar(cfg.total_epochs, f"train {cfg.model}", "epoch", enabled=progress and session.main,
                       initial=session.start, each=True, leave=False)
    try:
        for epoch in range(session.start, cfg.total_epochs):
            row = session.run_epoch(epoch)
            session.finish_phases(epoch)
            session.commit(epoch)
            barrier()
            bar.set_postfix(lr=f"{row['lr']:.3g}", loss=f"{row['train_loss']:.3f}", test_acc=f"{row['test_acc']:.3f}")
            bar.update(1)
    finally:
        bar.close()
    if session.main:
        session.store.close()
    return {"epochs": session.history, "final": session.finals}


def _sync_store(store: RunStore, out: Path, history: list[dict[str, Any]], finals: dict[str, dict[str, float]]) -> None:
    """Record in the store the epochs and final metrics it lacks (a finished unit is never rewritten), then
    ``metrics.json``. Idempotent: called after each commit of ``state.pt`` and again on resume."""
    with store.transaction() as conn:
        for row in history:
            if not store.has_unit("epoch", f"{row['epoch']:04d}"):
                store.put_unit("epoch", f"{row['epoch']:04d}", row, conn=conn)
        for name, m in finals.items():
            if not store.has_unit("final", name):
                store.put_unit("final", name, m, conn=conn)
    text = json_text({"epochs": history, "final": finals})
    path = out / "metrics.json"
    if not (path.is_file() and path.read_text(encoding="utf-8") == text):
        atomic_write_text(path, text)


def _finish_swa(model: nn.Module, swa_model: AveragedModel, data, cfg: TrainConfig, save: Callable) -> dict[str, dict[str, float]]:
    """End of the SWA budget: the last iterate is ``sgd``; the average, with BN statistics
    recomputed by `update_bn` on the (unaugmented) training set, is ``swa``; the live model
    then continues from the SWA weights (the paper's "SGD after SWA")."""
    save("sgd", model.state_dict())
    sgd_metrics = final_metrics(model, data)
    bn_batches = (xb for xb, _ in train_batches(data, cfg.batch_size, epoch_generator(cfg.seed, -1), augment=False))
    update_bn(bn_batches, swa_model, device=None)
    swa_state = swa_model.module.state_dict()
    save("swa", swa_state)
    swa_metrics = final_metrics(swa_model.module, data)
    model.load_state_dict(swa_state)
    return {"sgd": sgd_metrics, "swa": swa_metrics}
