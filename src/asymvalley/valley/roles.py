"""The roles of the data in a valley diagnosis (design §9):

- **train** (the data the model was fitted on) certifies directions and re-estimates BN statistics;
- **validation** (samples training never saw) selects: half A chooses the move, half B confirms it;
- **test** only reports, after every choice is made.

`DataRoles.build` turns the user's data into one ``{split: data}`` mapping for the probe API
(``train``, ``val_a``, ``val_b``, ``test``): tensors stay tensors, a `DataLoader` becomes two loaders over
`Subset` halves of its data set (same batch size and collate function), a `DataSplits` becomes tensors.
A validation split that shares samples with the training data is refused (one line).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch.utils.data import DataLoader, Subset

from ..errors import UsageError

__all__ = ["DataRoles", "HALF_SEED"]

HALF_SEED = 4_242  # added to the diagnosis seed: the permutation that splits validation into halves A and B

NO_VALIDATION = ("no validation split: the model's own training data cannot tell whether moving helps (a split carved "
                 "from data the model was fitted on is not held out); train with --val-fraction or pass a validation split")


def _is_pair(v: Any) -> bool:
    return isinstance(v, (tuple, list)) and len(v) == 2 and torch.is_tensor(v[0]) and torch.is_tensor(v[1])


def _from_splits(data: Any) -> dict[str, Any]:
    from ..data.base import DataSplits

    if isinstance(data, DataSplits):
        return {s: (data.prepare(getattr(data, f"{s}_x")), getattr(data, f"{s}_y")) for s in ("train", "test")}
    if isinstance(data, Mapping):
        out = {str(k): v for k, v in data.items()}
        if "validation" in out:
            out["val"] = out.pop("validation")
        unknown = sorted(set(out) - {"train", "val", "test"})
        if unknown:
            raise UsageError(f"unknown data split(s) {unknown}; name them train, val (or validation) and test")
        return out
    if isinstance(data, (DataLoader,)) or _is_pair(data):
        return {"train": data}
    raise UsageError(f"data must be a DataSplits, (x, y) tensors, a DataLoader or a dict of them by split, "
                     f"not {type(data).__name__}")


def _size(v: Any) -> int | None:
    if _is_pair(v):
        if len(v[0]) != len(v[1]):
            raise UsageError(f"a split has {len(v[0])} inputs and {len(v[1])} targets; give equal counts")
        return len(v[0])
    if isinstance(v, DataLoader):
        try:
            return len(v.dataset)
        except TypeError:
            return None
    raise UsageError(f"each split must be (x, y) tensors or a DataLoader, not {type(v).__name__}")


def _inputs(v: Any) -> torch.Tensor | None:
    """The inputs of a split as one tensor (a DataLoader's are gathered), or None when batches are not (x, y)."""
    if _is_pair(v):
        return v[0]
    xs = []
    for batch in v:
        if not isinstance(batch, (tuple, list)) or not torch.is_tensor(batch[0]):
            return None
        xs.append(batch[0])
    return torch.cat(xs) if xs else None


def _row_hashes(x: torch.Tensor) -> set[bytes]:
    flat = x.detach().cpu().contiguous().reshape(len(x), -1)
    return {hashlib.blake2b(r.numpy().tobytes(), digest_size=16).digest() for r in flat}


def _half(v: Any, idx: torch.Tensor) -> Any:
    if _is_pair(v):
        return (v[0][idx.to(v[0].device)], v[1][idx.to(v[1].device)])
    return DataLoader(Subset(v.dataset, idx.tolist()), batch_size=v.batch_size or 1, collate_fn=v.collate_fn)


@dataclass
class DataRoles:
    """The probe data mapping and a plain description of where each split came from."""

    splits: dict[str, Any]
    validation: dict[str, Any]
    has_test: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_validation(self) -> bool:
        return "val_a" in self.splits

    @classmethod
    def build(cls, data: Any, validation: Any = None, seed: int = 0, source: str = "user") -> "DataRoles":
        """``data``: the training data (and optionally ``val``/``test``); ``validation``: a held-out split
        given separately. Refuses a validation split that overlaps the training data."""
        parts = _from_splits(data)
        if "train" not in parts:
            raise UsageError("the data have no 'train' split; pass the data the model was trained on as 'train'")
        if validation is not None:
            if "val" in parts:
                raise UsageError("a validation split was given twice (in the data and as validation=); pass it once")
            parts["val"] = validation
        n = {s: _size(v) for s, v in parts.items()}
        for s, k in n.items():
            if k == 0:
                raise UsageError(f"split {s!r} is empty; give it at least one sample")
        splits = {"train": parts["train"]}
        if "test" in parts:
            splits["test"] = parts["test"]
        if "val" not in parts:
            info = {"source": "none", "n": 0, "n_train": n["train"], "n_test": n.get("test"), "reason": NO_VALIDATION}
            return cls(splits, info, "test" in parts)
        val = parts["val"]
        if n["val"] is None or n["val"] < 4:
            raise UsageError(f"the validation split has {n['val']} samples; give at least 4 (two per half), with a sized data set")
        overlap = _overlap(parts["train"], val)
        perm = torch.randperm(n["val"], generator=torch.Generator().manual_seed(HALF_SEED + int(seed)))
        half = n["val"] // 2
        splits["val_a"], splits["val_b"] = _half(val, perm[:half].sort().values), _half(val, perm[half:].sort().values)
        info = {"source": source, "n": n["val"], "n_select": half, "n_confirm": n["val"] - half, "n_train": n["train"],
                "n_test": n.get("test"), "overlap_checked": overlap is not None, "half_seed": HALF_SEED + int(seed)}
        return cls(splits, info, "test" in parts)

    def train_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training split as tensors (for Hessian directions)."""
        v = self.splits["train"]
        if _is_pair(v):
            return v[0], v[1]
        xs, ys = zip(*[(b[0], b[1]) for b in v])
        return torch.cat(xs), torch.cat(ys)


def _overlap(train: Any, val: Any) -> int | None:
    """Number of validation inputs equal to a training input (refused when > 0); None when not checkable."""
    xt, xv = _inputs(train), _inputs(val)
    if xt is None or xv is None:
        return None
    shared = len(_row_hashes(xv) & _row_hashes(xt))
    if shared:
        raise UsageError(f"the validation split shares {shared} of its {len(xv)} samples with the training data; "
                         "pass samples the model was never trained on")
    return shared
