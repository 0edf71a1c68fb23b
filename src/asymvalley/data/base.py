"""The data-set object every registry entry returns.

All data live as tensors (optionally on the compute device); mini-batches are
slices, so there is no per-sample Python on the hot path. Image sets may keep
``uint8`` storage: `DataSplits.prepare` normalises (and, for training,
augments with random crop + horizontal flip) a batch on its device.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

__all__ = ["DataSplits", "standardise"]


@dataclass(frozen=True)
class DataSplits:
    """Train/test tensors of one data set.

    ``train_x``/``test_x`` are float32 and already standardised with training
    statistics, or uint8 images (N, C, H, W) with ``mean``/``std`` per channel
    applied by `prepare`. ``augment`` names the training augmentation
    (``None`` or ``"crop_flip"``); evaluation never augments.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    input_shape: tuple[int, ...]
    num_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: str | None = None
    info: dict = field(default_factory=dict)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (x, y) tensors of split ``"train"`` or ``"test"``."""
        if name == "train":
            return self.train_x, self.train_y
        if name == "test":
            return self.test_x, self.test_y
        from ..errors import UsageError

        raise UsageError(f"unknown split {name!r}; known splits: train, test")

    def to(self, device: torch.device | str) -> "DataSplits":
        """A copy with all tensors on ``device`` (data resident, no host round-trips)."""
        return replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
        )

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "DataSplits":
        """The first ``n_train``/``n_test`` samples (for quick presets and tests)."""
        return replace(
            self,
            train_x=self.train_x[:n_train],
            train_y=self.train_y[:n_train],
            test_x=self.test_x[:n_test],
            test_y=self.test_y[:n_test],
        )

    def prepare(self, x: torch.Tensor, train_augment: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Turn a stored batch into model input: normalise uint8 images, augment if asked."""
        if x.dtype == torch.uint8:
            mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
            x = (x.float().div_(255.0) - mean) / std
        if train_augment and self.augment == "crop_flip":
            x = crop_flip(x, generator)
        return x


def crop_flip(x: torch.Tensor, generator: torch.Generator | None, pad: int = 4) -> torch.Tensor:
    """Random crop with ``pad``-pixel zero padding plus horizontal flip, batched on x's device."""
    n, _, h, w = x.shape
    dev = x.device
    gen_dev = generator.device if generator is not None else torch.device("cpu")
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gen_dev).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gen_dev).to(dev)
    flip = torch.rand(n, generator=generator, device=gen_dev).to(dev) < 0.5
    rows = (dy.view(n, 1) + torch.arange(h, device=dev).view(1, h))  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w, device=dev).view(1, w))  # (n, w)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    idx_n = torch.arange(n, device=dev).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def standardise(train_x: torch.Tensor, test_x: torch.Tensor, per_channel: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Standardise both splits with the training split's mean and std (per channel for (N, C, ...))."""
    dims = [0] + list(range(2, train_x.dim())) if per_channel and train_x.dim() > 2 else list(range(train_x.dim()))
    mean = train_x.mean(dim=dims, keepdim=True)
    std = train_x.std(dim=dims, keepdim=True).clamp_min(1e-8)
    stats = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
    return ((train_x - mean) / std).float().contiguous(), ((test_x - mean) / std).float().contiguous(), stats


def check_splits(d: DataSplits) -> DataSplits:
    """One-line `UsageError` unless both splits are usable: tensors, one integer label per sample, labels in
    ``[0, num_classes)``, inputs of ``input_shape`` (finite when floating point). Checked before any run writes."""
    from ..errors import UsageError

    where = f"data set {d.name!r}" + (f" (from {d.info['source']})" if isinstance(d.info, dict) and "source" in d.info else "")
    fix = "replace its files with the official ones" if isinstance(d.info, dict) and "format" in d.info else "regenerate it"
    if not isinstance(d.num_classes, int) or d.num_classes < 1:
        raise UsageError(f"{where} declares {d.num_classes!r} classes; {fix}")
    for split in ("train", "test"):
        x, y = d.split(split)
        if not (torch.is_tensor(x) and torch.is_tensor(y)):
            raise UsageError(f"{where}: the {split} split is not a pair of tensors; {fix}")
        if y.dim() != 1 or y.dtype.is_floating_point or y.dtype.is_complex or len(y) != len(x):
            raise UsageError(f"{where}: the {split} split has inputs {tuple(x.shape)} and labels {tuple(y.shape)} {y.dtype}, "
                             f"not one integer label per input; {fix}")
        if tuple(x.shape[1:]) != tuple(d.input_shape):
            raise UsageError(f"{where}: the {split} inputs have shape {tuple(x.shape[1:])}, not {tuple(d.input_shape)}; {fix}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= d.num_classes):
            raise UsageError(f"{where}: the {split} labels run from {int(y.min())} to {int(y.max())}, outside the "
                             f"{d.num_classes} classes 0..{d.num_classes - 1}; {fix}")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise UsageError(f"{where}: the {split} inputs hold NaN or inf; {fix}")
    return d
