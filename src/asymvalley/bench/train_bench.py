"""``asymvalley bench train``: our trainer's epoch time against a minimal hand-written loop.

Both sides train the same freshly initialised model on the same mini-batches
(same permutation per epoch), alternating epoch by epoch in one process so
machine noise hits both alike; the figure is the ratio of median epoch times.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from .. import data as data_registry
from .. import models as model_registry
from ..train.loop import epoch_generator, train_epoch

__all__ = ["run_train_bench"]


def _minimal_epoch(model, optimizer, x, y, batch_size, gen) -> None:
    model.train()
    perm = torch.randperm(x.shape[0], generator=gen)
    for start in range(0, x.shape[0], batch_size):
        idx = perm[start:start + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def run_train_bench(models=("mlp", "cnn1d_bn"), dataset: str = "mnist1d", epochs: int = 6, batch_size: int = 128,
                    log=print) -> dict:
    """Median epoch seconds of `train_epoch` and of a minimal loop, per model, and their ratio."""
    data = data_registry.load(dataset)
    runs = []
    for name in models:
        times = {"ours": [], "minimal": []}
        nets = {}
        for side in times:
            torch.manual_seed(0)
            net = model_registry.create(name, input_shape=data.input_shape, num_classes=data.num_classes)
            nets[side] = (net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4))
        for epoch in range(epochs + 1):  # epoch 0 is a warm-up, not counted
            for side in ("ours", "minimal") if epoch % 2 else ("minimal", "ours"):
                net, opt = nets[side]
                gen = epoch_generator(0, epoch)
                t0 = time.perf_counter()
                if side == "ours":
                    train_epoch(net, opt, data, batch_size, gen, lr=0.01)
                else:
                    _minimal_epoch(net, opt, data.train_x, data.train_y, batch_size, gen)
                if epoch:
                    times[side].append(time.perf_counter() - t0)
        ours, minimal = statistics.median(times["ours"]), statistics.median(times["minimal"])
        run = {"model": name, "dataset": dataset, "batch_size": batch_size, "epochs_timed": epochs,
               "ours_epoch_s": ours, "minimal_epoch_s": minimal, "ratio": ours / minimal}
        log(f"{name:<10} ours {ours * 1e3:8.1f} ms/epoch   minimal loop {minimal * 1e3:8.1f} ms/epoch   ratio {ours / minimal:.3f}")
        runs.append(run)
    return {"threads": torch.get_num_threads(), "runs": runs}
