"""Every kernel of `asymvalley.probe.kernels` agrees with a plain per-point loop (1e-5 relative)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from asymvalley import data as avdata
from asymvalley import models, probe
from asymvalley.probe.kernels import FastPathKernel, FusedKernel, GenericKernel, KernelInputs, select
from asymvalley.probe.space import ParamSpace


@pytest.fixture(scope="module")
def ds():
    return avdata.load("synthetic")


def _bn_model(ds) -> nn.Module:
    torch.manual_seed(0)
    m = models.create("cnn1d_bn", input_shape=ds.input_shape, num_classes=ds.num_classes)
    m.train()
    with torch.no_grad():  # non-trivial running statistics
        for i in range(0, len(ds.train_x), 64):
            m(ds.train_x[i:i + 64] * 1.3 + 0.2)
    return m.eval()


def _inputs(m, ds, u, slopes=False, bs=70) -> KernelInputs:
    splits = [ds.split(s) for s in ("train", "test")]
    batches = [(si, x[i:i + bs], y[i:i + bs], ds.prepare) for si, (x, y) in enumerate(splits) for i in range(0, len(x), bs)]
    return KernelInputs(model=m, space=ParamSpace(m), dirs=[u.tensors], buffers=dict(m.named_buffers()), batches=batches,
                        n_splits=2, loss_fn=F.cross_entropy, slopes=slopes, device=torch.device("cpu"),
                        sample=ds.prepare(ds.train_x[:64]))


def _loop(m, ds, u, alpha):
    """Deep copy, w + alpha u, one eval-mode pass per split: (loss sums, correct, slope sums by autograd)."""
    fresh = copy.deepcopy(m)
    with torch.no_grad():
        for n, p in fresh.named_parameters():
            p.add_(u.tensors[n], alpha=alpha)
    loss, corr, slope = [], [], []
    for s in ("train", "test"):
        x, y = ds.split(s)
        fresh.zero_grad()
        out = fresh(ds.prepare(x))
        total = F.cross_entropy(out, y, reduction="sum")
        total.backward()
        loss.append(float(total))
        corr.append(float((out.argmax(1) == y).sum()))
        slope.append(sum(float((p.grad * u.tensors[n]).sum()) for n, p in fresh.named_parameters()))
    return loss, corr, slope


@pytest.mark.parametrize("kernel", [GenericKernel, FastPathKernel, FusedKernel])
@pytest.mark.parametrize("slopes", [False, True])
def test_every_kernel_agrees_with_a_plain_loop(ds, kernel, slopes):
    m = _bn_model(ds)
    u = probe.make_direction("filter", m, seed=2)
    k = kernel.compile(_inputs(m, ds, u, slopes))
    alphas = [-0.8, 0.0, 0.5]
    with torch.no_grad(), k.context():
        got = k.evaluate([[a] for a in alphas])
    for (loss, corr, slope), a in zip(got, alphas):
        ref_loss, ref_corr, ref_slope = _loop(m, ds, u, a)
        assert loss.tolist() == pytest.approx(ref_loss, rel=1e-5)
        assert corr.tolist() == ref_corr
        if slopes:
            assert slope.tolist() == pytest.approx(ref_slope, rel=1e-4, abs=1e-4)
        else:
            assert all(v != v for v in slope.tolist())  # NaN: no slopes asked for


def test_selection_once_per_request(ds):
    m = _bn_model(ds)
    u = probe.make_direction("filter", m, seed=2)
    assert isinstance(select(_inputs(m, ds, u)), FusedKernel)
    assert isinstance(select(_inputs(m, ds, u, slopes=True)), FusedKernel)
    assert type(select(_inputs(m, ds, u), fast=False)) is GenericKernel


class _UserCNN(nn.Module):
    """A user's module: its forward reshapes (``unsqueeze``, ``flatten``) around Conv/BN/ReLU blocks."""

    def __init__(self, length: int = 24, classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
                                      nn.Conv1d(8, 8, 3, stride=2, padding=1), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Linear(8 * length // 2, classes)

    def forward(self, x):
        x = x.unsqueeze(1)
        return self.head(self.features(x).flatten(1))


class _UserMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(24, 16), nn.Linear(16, 5)

    def forward(self, x):
        return self.b(torch.relu(self.a(x.view(x.size(0), -1))))


class _Residual(_UserMLP):
    def forward(self, x):
        h = self.a(x)
        return self.b(torch.relu(h) + h)


@pytest.mark.parametrize("make, kernel", [(_UserCNN, "fused"), (_UserMLP, "fused"), (_Residual, "generic")])
@pytest.mark.parametrize("slopes", [False, True])
def test_users_modules_take_the_fused_path_where_they_trace_to_a_chain(make, kernel, slopes):
    torch.manual_seed(0)
    m = make()
    g = torch.Generator().manual_seed(1)
    data = {s: (torch.randn(n, 24, generator=g), torch.randint(0, 5, (n,), generator=g)) for s, n in (("train", 150), ("test", 70))}
    with torch.no_grad():
        m.train()(data["train"][0])  # BN statistics that are not the defaults
    m.eval()
    u = probe.make_direction("gaussian", m, seed=1)
    res = probe.curve(m, data, u, [-0.5, 0.0, 0.5], slopes=slopes, batch_size=64)
    plain = probe.curve(m, data, u, [-0.5, 0.0, 0.5], slopes=slopes, fast=False)
    assert res["kernels"].startswith(kernel) and plain["kernels"] == "generic"
    for s in ("train", "test"):
        assert res["splits"][s]["loss"] == pytest.approx(plain["splits"][s]["loss"], rel=1e-5)
        if slopes:
            assert res["splits"][s]["slope"] == pytest.approx(plain["splits"][s]["slope"], rel=1e-4, abs=1e-5)
