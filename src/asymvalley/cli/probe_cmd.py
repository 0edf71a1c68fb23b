"""``asymvalley probe``: loss/accuracy (and slopes) along a direction, written as curve.json (design §7).

Everything is validated before anything is written: a bad direction, range,
point count, split, BN policy or a checkpoint of another architecture ends as
one ``error:`` line with exit status 2 and no output file, no store rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import UsageError

RUN_CHECKPOINTS = ("sgd", "swa", "sgd_after_swa")


def _resolve_ckpt(run_dir: Path | None, ref: str) -> Path:
    """A checkpoint name inside ``RUN/checkpoints`` (``swa``, ``epoch_010``) or a path to a .pt file."""
    p = Path(ref)
    if p.suffix == ".pt" and os.path.lexists(p):
        return p  # a path: read_checkpoint says what is wrong with it, if anything
    if run_dir is not None:
        q = run_dir / "checkpoints" / f"{ref}.pt"
        if os.path.lexists(q):
            return q
        have = sorted(f.stem for f in (run_dir / "checkpoints").glob("*.pt") if f.is_file()) if (run_dir / "checkpoints").is_dir() else []
        raise UsageError(f"checkpoint {ref!r} not found in {run_dir}/checkpoints; available: {', '.join(have) or 'none'}")
    raise UsageError(f"checkpoint {ref!r} is not a .pt file; give a path, or probe a run directory to use names like swa")


class _RunInputs:
    """What a direction kind may need (`asymvalley.probe.direction_spec.DirectionInputs`), from a run directory."""

    def __init__(self, run_dir: Path | None, ckpt: dict, center_path: Path, space, dataset):
        self.run_dir, self.ckpt, self.center_path, self.space, self.dataset = run_dir, ckpt, center_path, space, dataset

    def endpoints(self, a: str, b: str):
        from ..checkpoint import read_checkpoint

        end_path = _resolve_ckpt(self.run_dir, b)
        other, ckpt = read_checkpoint(end_path), self.ckpt
        if other["model"] != ckpt["model"] or dict(other["model_kwargs"]) != dict(ckpt["model_kwargs"]):
            raise UsageError(f"checkpoint {end_path} is a {other['model']!r} {other['model_kwargs']} but {self.center_path} is a "
                             f"{ckpt['model']!r} {ckpt['model_kwargs']}; interpolate between checkpoints of one architecture")
        names = self.space.names
        return ({n: ckpt["state_dict"][n] for n in names if n in ckpt["state_dict"]},
                {n: other["state_dict"][n] for n in names if n in other["state_dict"]})

    def trajectory(self):
        from ..checkpoint import read_checkpoint

        if self.run_dir is None:
            raise UsageError("--direction pca needs a run directory with epoch snapshots (RUN/checkpoints/epoch_NNN.pt)")
        traj = []
        for sp in sorted((self.run_dir / "checkpoints").glob("epoch_*.pt")):
            c = read_checkpoint(sp)
            if c["model"] != self.ckpt["model"]:
                raise UsageError(f"snapshot {sp} is a {c['model']!r} but the centre is a {self.ckpt['model']!r}; use snapshots of one run")
            traj.append(c["state_dict"])
        return traj + [dict(self.ckpt["state_dict"])]

    def train_data(self):
        return self.dataset.prepare(self.dataset.train_x), self.dataset.train_y


def parse_range(value: tuple[str, str]) -> tuple[float, float]:
    """``--range A B``: two numbers, separated by a space (``--range -2 2``; a negative ``A`` is fine).

    >>> parse_range(("-2", "2"))
    (-2.0, 2.0)
    """
    try:
        return float(value[0]), float(value[1])
    except ValueError:
        raise UsageError(f"--range takes two numbers separated by a space, e.g. --range -2 2 (got {' '.join(value)!r})") from None


def _check_counts(seed: int, points: int, batch_size: Optional[int]) -> None:
    """Seed, point count and batch size within the project's limits (asymvalley.limits)."""
    from ..limits import MAX_BATCH, MAX_POINTS, check_count, check_seed

    check_seed(seed)
    if points >= 3:  # (fewer: linspace says why)
        check_count(points, "--points", 3, MAX_POINTS, "each point is a full pass over the data")
    if batch_size is not None and batch_size >= 1:
        check_count(batch_size, "--batch-size", 1, MAX_BATCH)


def _check_request(splits: str, bn: str, autocast: Optional[str], device: str, batch_size: Optional[int],
                   out: Optional[Path]) -> tuple[list[str], Any]:
    """The cheap checks of a checkpoint probe, before any file is read: (splits, BN policy)."""
    from ..io import check_writable
    from ..probe.bn import parse_bn
    from ..probe.request import check_autocast, check_batch_size, check_device

    split_list = [s.strip() for s in splits.split(",") if s.strip()]
    for s in split_list:
        if s not in ("train", "test"):
            raise UsageError(f"unknown split {s!r}; known splits: train, test (e.g. --splits train,test)")
    if not split_list:
        raise UsageError("--splits is empty; use e.g. --splits train,test")
    policy = parse_bn(bn)
    check_autocast(autocast, check_device(device))  # the probe request's own checks, before any checkpoint is read
    check_batch_size(batch_size, "--batch-size")
    if out is not None and Path(out).is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name such as curve.json")
    if out is not None:
        check_writable(out, "--out")  # before any point is computed
    return split_list, policy


def _run_dir_of(target: str, checkpoint: Optional[str]) -> Optional[Path]:
    """The run directory a probe target belongs to (None for a loose .pt file); refuses what is neither."""
    from ..store import STORE_NAME

    tpath = Path(target)
    if tpath.is_dir():
        if not (tpath / STORE_NAME).is_file() and not (tpath / "checkpoints").is_dir():
            raise UsageError(f"{tpath} is not a run directory (no {STORE_NAME} or checkpoints/); pass the --out "
                             "directory of `asymvalley train` or a .pt file")
        return tpath
    if tpath.is_file():
        if checkpoint is not None:
            raise UsageError("--checkpoint only applies to a run directory; drop it when probing a .pt file")
        if (tpath.parent.parent / STORE_NAME).is_file() and tpath.parent.name == "checkpoints":
            return tpath.parent.parent
        return None
    if os.path.lexists(tpath):
        from ..io import open_regular

        open_regular(tpath, "checkpoint", "pass a run directory or a checkpoint .pt file")  # says what it is instead
    raise UsageError(f"{target} does not exist; pass a run directory or a checkpoint .pt file")


def _centre_path(target: str, run_dir: Optional[Path], spec, checkpoint: Optional[str], out: Optional[Path]) -> Path:
    """The centre checkpoint (a two-point direction's first end point); ``--out`` may not overwrite an input."""
    tpath = Path(target)
    if spec.start is not None:
        center_path = _resolve_ckpt(run_dir, spec.start)
    else:
        center_path = _resolve_ckpt(run_dir, checkpoint or "sgd") if tpath.is_dir() else tpath
    if out is not None:
        from ..io import refuse_clobber

        ends = [center_path] + ([_resolve_ckpt(run_dir, spec.options["pair"][1])] if "pair" in spec.options else [])
        refuse_clobber(out, "--out", inputs=[tpath, *ends, spec.options.get("path")])
    return center_path


def run_probe(target: str, direction: str, seed: int = 0, range_: tuple[float, float] = (-1.0, 1.0), points: int = 41,
              splits: str = "train,test", bn: str = "eval", slopes: bool = False, checkpoint: Optional[str] = None,
              batch_size: Optional[int] = None, device: str = "cpu", out: Optional[Path] = None, progress: bool = True,
              autocast: Optional[str] = None) -> dict:
    """The body of ``asymvalley probe`` (also callable from Python and tests)."""
    from .. import data as avdata
    from ..checkpoint import build_model, read_checkpoint, sha256_file
    from ..probe import curve, distributed, linspace
    from ..probe.direction_spec import parse_spec, resolve
    from ..probe.space import ParamSpace
    from ..store import STORE_NAME, RunStore

    _check_counts(seed, points, batch_size)
    alphas = linspace(range_[0], range_[1], points)
    if str(target).endswith(".py"):  # the user's own model and data (cli/user_spec.py)
        from .user_spec import probe_spec

        return probe_spec(target, direction, alphas, seed, splits, bn, slopes, batch_size, device, out, progress, autocast)
    split_list, policy = _check_request(splits, bn, autocast, device, batch_size, out)
    spec = parse_spec(direction)
    run_dir = _run_dir_of(target, checkpoint)
    center_path = _centre_path(target, run_dir, spec, checkpoint, out)
    ckpt = read_checkpoint(center_path)
    model = build_model(ckpt, center_path).eval()
    space = ParamSpace(model)
    dataset = avdata.load(ckpt["dataset"])
    u = resolve(spec, model, _RunInputs(run_dir, ckpt, center_path, space, dataset), seed=seed, space=space)

    distributed.init_from_env(device)  # evaluate (writes the store in chunks), then the JSON
    store = RunStore(run_dir, create=False) if run_dir is not None and os.path.lexists(run_dir / STORE_NAME) else None
    try:
        key_extra = {"checkpoint": sha256_file(center_path), "direction_spec": direction, "dataset": ckpt["dataset"]}
        res = curve(model, dataset, u, alphas, splits=split_list, bn=policy, slopes=slopes, batch_size=batch_size,
                    store=store, key_extra=key_extra, device=device, progress=progress and distributed.is_main(),
                    **({"autocast": autocast} if autocast else {}))
    finally:
        if store is not None:
            store.close()
    res["direction"]["spec"] = direction
    res["checkpoint"] = str(center_path)
    res["dataset"] = ckpt["dataset"]
    if out is not None and distributed.is_main():
        from ..io import write_json

        write_json(out, res)
    return res


def register(app: typer.Typer) -> None:
    @app.command("probe")
    def probe_command(
        target: str = typer.Argument(..., metavar="RUN_OR_CHECKPOINT", help="run directory (from `asymvalley train`), a checkpoint .pt, "
                                     "or SPEC.py: a Python file defining model, data (and optionally batch_fn, loss_fn)"),
        direction: str = typer.Option(..., "--direction", help="gaussian | uniform | filter[:keep] | layer[:keep] | interp:A->B | "
                                      "inter_plus_rand:A->B | pca[:K] | hessian[:K] | path/to/direction.pt"),
        seed: int = typer.Option(0, "--seed", help="seed of random directions"),
        range_: tuple[str, str] = typer.Option(("-1", "1"), "--range", metavar="A B", show_default=False, callback=parse_range,
                                               help="alpha from A to B: two numbers, A < B (default -1 1; e.g. --range -2 2)"),
        points: int = typer.Option(41, "--points", help="number of alphas (>= 3)"),
        splits: str = typer.Option("train,test", "--splits", help="comma-separated: train,test (a SPEC.py: the keys of its data)"),
        bn: str = typer.Option("eval", "--bn", help="eval | recalibrate[:N][:interp=K][:batches] (interp=K: exact at K "
                                "anchors, interpolated between, checked to 0.5 %)"),
        slopes: bool = typer.Option(False, "--slopes", help="also the exact d/dl L(w + l u) by forward-mode AD"),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="centre in a run dir: sgd (default) | swa | sgd_after_swa | epoch_NNN"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="evaluation mini-batch (default: 1024 on CPU, 4096 on CUDA)"),
        device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
        autocast: Optional[str] = typer.Option(None, "--autocast", help="bf16 | fp16: mixed-precision forward on CUDA (recorded in curve.json)"),
        out: Path = typer.Option(..., "--out", help="curve.json to write"),
        resume: bool = typer.Option(True, "--resume", help="accepted for symmetry with other commands: probing a run "
                                    "directory always resumes from RUN/run.sqlite (finished points are never recomputed)"),
    ) -> None:
        """Loss and accuracy on train/test along w + alpha*u (curve.json); results also go to RUN/run.sqlite and resume."""
        res = run_probe(target, direction, seed=seed, range_=range_, points=points, splits=splits, bn=bn, slopes=slopes,
                        checkpoint=checkpoint, batch_size=batch_size, device=device, out=out, autocast=autocast)
        from ..probe import distributed

        if distributed.is_main():
            s0 = next(iter(res["splits"]))
            i0 = min(range(len(res["alphas"])), key=lambda i: abs(res["alphas"][i]))
            typer.echo(f"wrote {out}: {len(res['alphas'])} points, {res['direction']['kind']} direction (norm {res['direction']['norm']:.4g}), "
                       f"bn={res['bn']}, {s0} loss at alpha={res['alphas'][i0]:g}: {res['splits'][s0]['loss'][i0]:.4f}")
