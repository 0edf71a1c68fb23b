"""Data sets that need no download: MNIST-1D, scikit-learn digits, synthetic.

MNIST-1D (Greydanus 2020) is generated offline with the package's default
arguments (4000 train / 1000 test, 40 features, 10 classes) and cached as
``.npz`` in the user cache directory; generation is seeded, so every machine
gets identical tensors.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_write_bytes
from . import register_dataset
from .base import DataSplits, standardise


def cache_dir() -> Path:
    """``$ASYMVALLEY_CACHE`` or ``$XDG_CACHE_HOME/asymvalley`` or ``~/.cache/asymvalley``.

    A relative ``XDG_CACHE_HOME`` is ignored (the XDG rule); an empty or relative
    ``HOME`` is refused rather than caching into the current directory.
    """
    root = os.environ.get("ASYMVALLEY_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "asymvalley"
    env_home = os.environ.get("HOME")
    home = os.path.expanduser("~") if env_home is None or env_home.strip() else ""
    if not os.path.isabs(home):
        from ..errors import UsageError

        raise UsageError(f"no cache directory: HOME is {os.environ.get('HOME', '')!r}, not an absolute path; "
                         "set ASYMVALLEY_CACHE to a writable directory")
    return Path(home) / ".cache" / "asymvalley"


def _cache_error(path: Path, exc: OSError):
    from ..errors import UsageError

    return UsageError(f"cannot write the data cache {path.parent} ({exc.strerror or type(exc).__name__}); "
                      "set ASYMVALLEY_CACHE to a writable directory")


def _check_cache_writable(path: Path) -> None:
    from ..io import check_writable

    check_writable(path, "the data cache", fix="set ASYMVALLEY_CACHE to a writable directory")


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    from ..errors import UsageError
    from ..io import open_regular

    fix = "delete it and rerun to regenerate it"
    fd = open_regular(path, "cached MNIST-1D file", fix, max_bytes=1 << 30)
    try:
        with os.fdopen(fd, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # truncated, not a zip, pickled objects, ...: the cache is damaged
        raise UsageError(f"cached MNIST-1D file {path} is unreadable ({type(exc).__name__}); {fix}") from None
    if not {"x", "y", "x_test", "y_test"} <= set(arrays):
        raise UsageError(f"cached MNIST-1D file {path} lacks the arrays x, y, x_test, y_test; {fix}")
    for xs, ys in (("x", "y"), ("x_test", "y_test")):
        x, y = arrays[xs], arrays[ys]
        if x.ndim != 2 or x.shape[1] != 40 or y.shape != (len(x),) or x.dtype.kind != "f" or y.dtype.kind not in "iu":
            raise UsageError(f"cached MNIST-1D file {path} has {xs} {x.shape} {x.dtype} and {ys} {y.shape} {y.dtype}, "
                             f"not (N, 40) floats and N integer labels; {fix}")
    return arrays


def _mnist1d_arrays() -> dict[str, np.ndarray]:
    path = cache_dir() / "mnist1d.npz"
    if os.path.lexists(path):
        return _read_cache(path)
    _check_cache_writable(path)  # before the generation's seconds are spent
    from mnist1d.data import get_dataset_args, make_dataset

    raw = make_dataset(get_dataset_args())
    arrays = {k: np.asarray(raw[k]) for k in ("x", "y", "x_test", "y_test")}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        raise _cache_error(path, exc) from None
    return arrays


@register_dataset("mnist1d")
def mnist1d() -> DataSplits:
    """MNIST-1D: (N, 1, 40) signals, 10 classes, standardised with training statistics."""
    a = _mnist1d_arrays()
    tx = torch.from_numpy(a["x"]).float().unsqueeze(1)
    vx = torch.from_numpy(a["x_test"]).float().unsqueeze(1)
    tx, vx, stats = standardise(tx, vx, per_channel=True)
    return DataSplits(
        "mnist1d", tx, torch.from_numpy(a["y"]).long(), vx, torch.from_numpy(a["y_test"]).long(),
        input_shape=(1, 40), num_classes=10, info={"standardise": stats, "source": "mnist1d.make_dataset(get_dataset_args())"},
    )


@register_dataset("digits")
def digits() -> DataSplits:
    """scikit-learn's 8x8 digits: 1797 images, stratified 75/25 split with random_state=0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(d.images, d.target, test_size=0.25, stratify=d.target, random_state=0)
    tx = torch.from_numpy(x_tr).float().unsqueeze(1)
    vx = torch.from_numpy(x_te).float().unsqueeze(1)
    tx, vx, stats = standardise(tx, vx, per_channel=True)
    return DataSplits(
        "digits", tx, torch.from_numpy(y_tr).long(), vx, torch.from_numpy(y_te).long(),
        input_shape=(1, 8, 8), num_classes=10, info={"standardise": stats, "split": "stratified 75/25, random_state=0"},
    )


@register_dataset("synthetic")
def synthetic(n_train: int = 256, n_test: int = 128, features: int = 16, classes: int = 4, seed: int = 0) -> DataSplits:
    """Tiny Gaussian-blob classification set, (N, 1, features), for tests."""
    g = torch.Generator().manual_seed(seed)
    centres = 1.5 * torch.randn(classes, features, generator=g)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % classes
        x = centres[y] + torch.randn(n, features, generator=g)
        return x.unsqueeze(1), y

    tx, ty = draw(n_train)
    vx, vy = draw(n_test)
    tx, vx, stats = standardise(tx, vx, per_channel=True)
    return DataSplits("synthetic", tx, ty, vx, vy, input_shape=(1, features), num_classes=classes, info={"standardise": stats})


@register_dataset("teacher2")
def teacher2(n_train: int = 4000, n_test: int = 1000, features: int = 8, classes: int = 3, seed: int = 0,
             a: float = 2.0, b: float = 2.0) -> DataSplits:
    """Labels drawn from a ``two_param`` teacher network with parameters (a, b) (Appendix A).

    Inputs are N(0, 1) vectors of ``features``; labels are sampled from the
    softmax of the teacher's logits, so a ``two_param`` student (same hidden
    size and projection seed) can reach the Bayes-optimal loss at (a, b).
    Inputs are not standardised (they already are, by construction).
    """
    from ..models.small import TwoParamNet

    g = torch.Generator().manual_seed(seed + 7)
    teacher = TwoParamNet((1, features), classes, seed=seed)
    with torch.no_grad():
        teacher.a.fill_(a)
        teacher.b.fill_(b)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 1, features, generator=g)
        with torch.no_grad():
            probs = torch.softmax(teacher(x), dim=1)
        return x, torch.multinomial(probs, 1, generator=g).squeeze(1)

    tx, ty = draw(n_train)
    vx, vy = draw(n_test)
    return DataSplits("teacher2", tx, ty, vx, vy, input_shape=(1, features), num_classes=classes,
                      info={"teacher": {"a": a, "b": b, "seed": seed}})
