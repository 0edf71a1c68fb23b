"""The GPU path check (issue 6): train ``resnet56`` one epoch on synthetic CIFAR-shaped data
on the GPU, probe a 21-point train+test curve, and print images/s of both next to a plain
``torch.no_grad`` forward loop at the same batch size. Run by ``scripts/gpu_check.sh``.
"""

from __future__ import annotations

import argparse
import time

import torch

from .. import data as data_registry
from .. import models as model_registry
from .. import probe
from ..train.loop import epoch_generator, evaluate, train_epoch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_forward_images_per_s(model, x: torch.Tensor, batch_size: int, device: str, repeats: int = 2,
                               autocast: str | None = None) -> float:
    """A plain eval-mode ``torch.no_grad`` loop over ``x`` in batches: the reference throughput, at the
    engine's precision (TF32 off for fp32, as the engine runs exact fp32; the same autocast otherwise)."""
    import contextlib

    model.eval()
    amp = torch.autocast("cuda", dtype=torch.bfloat16 if autocast == "bf16" else torch.float16) if autocast else contextlib.nullcontext()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        return _plain_loop(model, x, batch_size, device, repeats, amp)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def _plain_loop(model, x, batch_size, device, repeats, amp) -> float:
    with torch.no_grad(), amp:
        for start in range(0, min(x.shape[0], 4 * batch_size), batch_size):  # warm-up
            model(x[start:start + batch_size])
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            for start in range(0, x.shape[0], batch_size):
                model(x[start:start + batch_size])
        _sync(device)
    return repeats * x.shape[0] / (time.perf_counter() - t0)


def run(device: str = "cuda", model_name: str = "resnet56", n_train: int = 10000, n_test: int = 2000,
        batch_size: int = 512, points: int = 21, autocast: str | None = None) -> dict:
    data = data_registry.load("synthetic-cifar", n_train=n_train, n_test=n_test).to(device)
    torch.manual_seed(0)
    model = model_registry.create(model_name, input_shape=data.input_shape, num_classes=data.num_classes).to(device)
    mem = torch.channels_last if device.startswith("cuda") else torch.contiguous_format
    model = model.to(memory_format=mem)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    train_epoch(model, opt, data.subset(n_train=4 * 128), 128, epoch_generator(0, 99), 0.05, mem)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    train_loss, train_acc = train_epoch(model, opt, data, 128, epoch_generator(0, 0), 0.05, mem)
    _sync(device)
    train_s = time.perf_counter() - t0
    test_loss, test_acc = evaluate(model, data, "test")

    model.eval()
    u = probe.make_direction("filter", model, seed=0)
    alphas = probe.linspace(-1.0, 1.0, points)
    kw = {"autocast": autocast} if autocast else {}
    probe.curve(model, data, u, alphas[:3], batch_size=batch_size, **kw)  # warm-up (compilation, cuDNN autotune)
    _sync(device)
    t0 = time.perf_counter()
    curve = probe.curve(model, data, u, alphas, batch_size=batch_size, **kw)
    _sync(device)
    probe_s = time.perf_counter() - t0
    probe_ips = points * (n_train + n_test) / probe_s

    x_all = torch.cat([data.prepare(data.train_x), data.prepare(data.test_x)]).contiguous(memory_format=mem)
    plain_ips = plain_forward_images_per_s(model, x_all, batch_size, device, autocast=autocast)
    result = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "torch": torch.__version__, "model": model_name, "n_train": n_train, "n_test": n_test,
        "train_images_per_s": n_train / train_s, "train_epoch_s": train_s, "train_loss": train_loss,
        "test_acc_after_1_epoch": test_acc, "probe_points": points, "probe_s": probe_s,
        "probe_images_per_s": probe_ips, "plain_forward_images_per_s": plain_ips,
        "probe_vs_plain": probe_ips / plain_ips, "batch_size": batch_size, "autocast": autocast,
        "curve_train_loss_at_0": curve["splits"]["train"]["loss"][points // 2],
    }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--autocast", default=None, help="e.g. bf16")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    r = run(a.device, a.model, a.n_train, a.n_test, a.batch_size, autocast=a.autocast)
    print(f"device {r['device']}  torch {r['torch']}  model {r['model']}  batch {r['batch_size']}  autocast {r['autocast']}")
    print(f"train  : {r['train_images_per_s']:10.0f} images/s  (1 epoch of {r['n_train']} images in {r['train_epoch_s']:.2f} s)")
    print(f"probe  : {r['probe_images_per_s']:10.0f} images/s  ({r['probe_points']}-point train+test curve in {r['probe_s']:.2f} s)")
    print(f"plain  : {r['plain_forward_images_per_s']:10.0f} images/s  (torch.no_grad eval forward loop)")
    print(f"probe / plain = {r['probe_vs_plain']:.3f}")
    if a.out:
        from ..io import write_json

        write_json(a.out, r)


if __name__ == "__main__":
    main()
