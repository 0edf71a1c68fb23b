"""BN re-estimation (issue 13.2): every path exact against plain loops; the approximate mode keeps its bound.

* exact paths (generic, cpu-fastpath and fused kernels; samples and batches weighting) agree with a
  plain per-point loop (deep copy, ``w + a u``, the SWA authors' ``bn_update`` re-implemented in
  plain PyTorch, eval) to 1e-5 relative, and the fused re-estimation's running statistics agree
  with the authors' arithmetic to 1e-6;
* ``recalibrate:interp=K`` stays within its 0.5 % bound where it interpolates, falls back to exact
  re-estimation (with a warning and a record) where the check fails, and is refused off a line.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bn_reference import authors_bn_update

from asymvalley import data as avdata
from asymvalley import models, probe
from asymvalley.errors import UsageError
from asymvalley.probe.bn import parse_bn
from asymvalley.probe.bn_interp import SAFETY, TOLERANCE
from asymvalley.probe.fused import compile_chain
from asymvalley.probe import fused_recal, recal_moments
from asymvalley.probe.fused_recal import recalibrated_chain_buffers
from asymvalley.probe.fused_steps import _Layer
from asymvalley.probe.recal_moments import FirstLayerMoments
from asymvalley.probe.kernels import FastPathKernel, FusedKernel, GenericKernel, KernelInputs
from asymvalley.probe.space import ParamSpace

BS = 48  # the synthetic train split (256) is not a multiple: the last batch is short, the weightings differ


@pytest.fixture(scope="module")
def ds():
    return avdata.load("synthetic")


def _bn_model(ds) -> nn.Module:
    torch.manual_seed(0)
    m = models.create("cnn1d_bn", input_shape=ds.input_shape, num_classes=ds.num_classes).train()
    with torch.no_grad():
        m(ds.prepare(ds.train_x) * 1.3 + 0.2)
    return m.eval()


def _plain_loop(m, ds, u, alpha, weighting="samples"):
    """Per point: deep copy, w + alpha u, the authors' re-estimation, one eval pass per split -> loss sums."""
    fresh = copy.deepcopy(m)
    with torch.no_grad():
        for n, p in fresh.named_parameters():
            p.add_(u.tensors[n], alpha=alpha)
    tx = ds.prepare(ds.train_x)
    authors_bn_update(fresh, [tx[i:i + BS] for i in range(0, len(tx), BS)], weighting)
    with torch.no_grad():
        return [float(F.cross_entropy(fresh(ds.prepare(x)), y, reduction="sum")) for x, y in (ds.split("train"), ds.split("test"))]


@pytest.mark.parametrize("kernel", [GenericKernel, FastPathKernel, FusedKernel])
@pytest.mark.parametrize("weighting", ["samples", "batches"])
def test_every_reestimation_path_agrees_with_a_plain_loop(ds, kernel, weighting):
    m = _bn_model(ds)
    u = probe.make_direction("filter", m, seed=3)
    splits = [ds.split(s) for s in ("train", "test")]
    tx = ds.prepare(ds.train_x)
    inputs = KernelInputs(model=m, space=ParamSpace(m), dirs=[u.tensors], buffers=dict(m.named_buffers()),
                          batches=[(si, x[i:i + 70], y[i:i + 70], ds.prepare) for si, (x, y) in enumerate(splits) for i in range(0, len(x), 70)],
                          n_splits=2, loss_fn=F.cross_entropy, slopes=False, device=torch.device("cpu"), sample=tx[:64],
                          recal_batches=[tx[i:i + BS] for i in range(0, len(tx), BS)], bn_weighting=weighting)
    k = kernel.compile(inputs)
    assert k is not None
    alphas = [-0.7, 0.0, 0.9]
    with torch.no_grad(), k.context():
        got = k.evaluate([[a] for a in alphas])
    for (loss, _, _), a in zip(got, alphas):
        assert loss.tolist() == pytest.approx(_plain_loop(m, ds, u, a, weighting), rel=1e-5)


def _mlp_bn(ds) -> nn.Module:
    """Linear -> BN1d on (N, C) activations: the other layout the re-estimation pass normalises."""
    torch.manual_seed(1)
    d = int(torch.tensor(ds.input_shape).prod())
    m = nn.Sequential(nn.Flatten(), nn.Linear(d, 24), nn.BatchNorm1d(24), nn.ReLU(), nn.Linear(24, 24),
                      nn.BatchNorm1d(24, affine=False), nn.ReLU(), nn.Linear(24, ds.num_classes)).train()
    with torch.no_grad():
        m(ds.prepare(ds.train_x) * 1.3 + 0.2)
    return m.eval()


class _Conv2dBN(nn.Module):
    """A user's 2-D CNN on 1-D rows (its ``forward`` reshapes): Conv2d -> BN2d -> ReLU twice, Linear head."""

    def __init__(self, classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8 * 2 * 2, classes)

    def forward(self, x):
        return self.head(self.body(x.reshape(-1, 1, 4, 4)).flatten(1))


def _conv2d_bn(ds) -> nn.Module:
    torch.manual_seed(2)
    m = _Conv2dBN(ds.num_classes).train()
    with torch.no_grad():
        m(ds.prepare(ds.train_x) * 1.3 + 0.2)
    return m.eval()


@pytest.mark.parametrize("first", ["patches", "moments", "input"],
                         ids=["first-bn-output-from-patches", "first-bn-stats-from-moments", "first-bn-from-its-input"])
@pytest.mark.parametrize("build", [_bn_model, _mlp_bn, _conv2d_bn])
@pytest.mark.parametrize("weighting", ["samples", "batches"])
def test_fused_running_statistics_are_the_authors_arithmetic(ds, weighting, build, first, monkeypatch):
    """Every way the re-estimation pass runs its first BN layer (normalised output as one product of the kept
    patches; statistics from the moments, then an affine pass; statistics from the layer's output) gives the
    running statistics of the authors' loop, for 1-D and 2-D convolutions and a Linear first layer."""
    if first == "input":
        monkeypatch.setattr(fused_recal, "MAX_PATCH_DIM", 0)
    if first == "moments":
        monkeypatch.setattr(recal_moments, "MAX_COLUMN_BYTES", 0)
    m = build(ds)
    tx = ds.prepare(ds.train_x)
    batches = [tx[i:i + BS] for i in range(0, len(tx), BS)]
    chain = compile_chain(m, tuple(tx.shape[1:]))
    stacked = fused_recal.StackedGroups(batches, weighting)
    got = recalibrated_chain_buffers(chain, {n: p.detach() for n, p in m.named_parameters()}, dict(m.named_buffers()),
                                     stacked)
    _, _, _, moments, spatial = stacked.first
    assert (moments is not None, spatial is not None) == {"patches": (True, True), "moments": (True, False),
                                                          "input": (False, False)}[first]
    ref = dict(authors_bn_update(copy.deepcopy(m), batches, weighting).named_buffers())
    for name, t in ref.items():
        if name.endswith(("running_mean", "running_var")):
            assert torch.allclose(got[name], t, rtol=1e-6, atol=1e-7), name
        else:
            assert int(got[name]) == int(t) == len(batches)


@pytest.mark.parametrize("kind, layer, x", [
    ("conv1d", nn.Conv1d(3, 8, 5, stride=2, padding=2), torch.randn(40, 3, 23) * 2 + 1),
    ("conv2d", nn.Conv2d(2, 6, 3, stride=2, padding=1), torch.randn(40, 2, 9, 7) - 3),
    ("linear", nn.Linear(12, 5), torch.randn(40, 12) + 4),
])
def test_first_layer_moments_give_each_batchs_statistics(kind, layer, x):
    """The first BN's batch statistics from the patch moments equal those of the layer's output (padding,
    stride and bias included), per batch, to float32 rounding."""
    sizes = [16, 16, 8]
    moments = FirstLayerMoments(_Layer(kind, "", layer), [x[:32], x[32:]], [sizes[:2], sizes[2:]])
    mean, var = moments.stats(dict(layer.named_parameters()))
    with torch.no_grad():
        z = layer.double()(x.double())
    layer.float()
    dims = [0] + list(range(2, z.dim()))
    at = 0
    for k, b in enumerate(sizes):
        ref_var, ref_mean = torch.var_mean(z[at:at + b], dims, correction=0)
        at += b
        assert torch.allclose(mean[k].double(), ref_mean, rtol=1e-6, atol=1e-6)
        assert torch.allclose(var[k].double(), ref_var, rtol=1e-6, atol=1e-7)


def test_a_first_convolution_sees_its_input_change_in_place(ds):
    """The chain keeps the data's im2col columns between weight points, but not past an in-place change."""
    m = _bn_model(ds)
    x = ds.prepare(ds.train_x[:64]).clone()
    chain = compile_chain(m, tuple(x.shape[1:]))
    run = chain.bind({n: p.detach() for n, p in m.named_parameters()}, dict(m.named_buffers()))
    with torch.no_grad():
        assert torch.allclose(run(x), m(x), atol=1e-5) and chain.columns.used > 0
        x.mul_(-2.0).add_(0.5)
        assert torch.allclose(run(x), m(x), atol=1e-5)


def _line_model(ds) -> nn.Module:
    """Linear -> BN -> ReLU -> Linear: the BN statistics are polynomials of degree <= 2 in alpha."""
    torch.manual_seed(1)
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, ds.num_classes)).train()
    with torch.no_grad():
        m(ds.prepare(ds.train_x))
    return m.eval()


def _max_rel(a, b) -> float:
    return max(abs(x - y) / abs(y) for s in a["splits"] for x, y in zip(a["splits"][s]["loss"], b["splits"][s]["loss"]))


@pytest.mark.parametrize("fast", [None, False])
def test_interpolated_statistics_stay_within_their_bound(ds, fast):
    m = _bn_model(ds)
    u = probe.make_direction("filter", m, seed=3)
    alphas = probe.linspace(-0.5, 0.5, 13)
    exact = probe.curve(m, ds, u, alphas, bn="recalibrate", bn_batch_size=BS, fast=fast)
    approx = probe.curve(m, ds, u, alphas, bn="recalibrate:interp=5", bn_batch_size=BS, fast=fast)
    check = approx["bn_check"]
    assert approx["bn"] == "recalibrate:interp=5" and check["interpolated"] and not check["fallback"]
    assert check["anchors"] == pytest.approx([-0.5, -0.25, 0.0, 0.25, 0.5]) and len(check["check_alphas"]) == 3
    assert check["max_rel_error"] <= TOLERANCE and _max_rel(approx, exact) <= TOLERANCE
    assert _max_rel(approx, exact) > 0  # statistics really were interpolated, not re-estimated
    for i, a in enumerate(alphas):  # at the anchors the statistics are the exact ones
        if any(abs(a - x) < 1e-12 for x in check["anchors"]):
            assert approx["splits"]["test"]["loss"][i] == pytest.approx(exact["splits"]["test"]["loss"][i], rel=1e-6)


def test_quadratic_statistics_are_interpolated_exactly_from_three_anchors(ds):
    m = _line_model(ds)
    u = probe.make_direction("filter", m, seed=0)
    alphas = probe.linspace(-1, 1, 11)
    exact = probe.curve(m, ds, u, alphas, bn="recalibrate")
    approx = probe.curve(m, ds, u, alphas, bn="recalibrate:interp=3")
    assert approx["bn_check"]["interpolated"] and _max_rel(approx, exact) < 1e-5


def test_a_bad_interpolation_falls_back_to_exact(ds):
    m = _line_model(ds)
    u = probe.make_direction("filter", m, seed=0)
    alphas = probe.linspace(-4, 4, 9)  # linear interpolation of a strongly curved variance: far outside the bound
    exact = probe.curve(m, ds, u, alphas, bn="recalibrate")
    with pytest.warns(UserWarning, match=r"recalibrate:interp=2: interpolated statistics are .*% off .*; re-estimating exactly"):
        approx = probe.curve(m, ds, u, alphas, bn="recalibrate:interp=2")
    check = approx["bn_check"]
    assert check["fallback"] and not check["interpolated"] and check["max_rel_error"] > TOLERANCE / SAFETY
    assert _max_rel(approx, exact) < 1e-6  # the fallback is the exact re-estimation


@pytest.mark.parametrize("lo,hi,n,k", [(-0.5, 0.5, 9, 3), (-1, 1, 21, 5), (-1, 1, 21, 3), (-2, 2, 17, 4)])
def test_the_bound_holds_or_the_probe_falls_back(ds, lo, hi, n, k):
    """On a rough curve (256 training samples: the statistics are not smooth in alpha) the mode may not
    interpolate, but whatever it reports is within the bound of exact re-estimation at every point."""
    m = _bn_model(ds)
    u = probe.make_direction("filter", m, seed=3)
    alphas = probe.linspace(lo, hi, n)
    exact = probe.curve(m, ds, u, alphas, bn="recalibrate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        approx = probe.curve(m, ds, u, alphas, bn=f"recalibrate:interp={k}")
    assert _max_rel(approx, exact) <= TOLERANCE
    assert approx["bn_check"]["fallback"] == (approx["bn_check"]["max_rel_error"] > TOLERANCE / SAFETY)


def test_interpolation_with_slopes_and_too_few_points(ds):
    m = _bn_model(ds)
    u = probe.make_direction("filter", m, seed=3)
    alphas = probe.linspace(-0.5, 0.5, 13)
    exact = probe.curve(m, ds, u, alphas, bn="recalibrate", slopes=True)
    approx = probe.curve(m, ds, u, alphas, bn="recalibrate:interp=5", slopes=True)
    assert approx["kernels"] == "fused-jvp" and approx["bn_check"]["interpolated"] and _max_rel(approx, exact) <= TOLERANCE
    few = probe.curve(m, ds, u, [-0.5, 0.0, 0.5], bn="recalibrate:interp=3")
    assert not few["bn_check"]["interpolated"] and "exact re-estimation at every point" in few["bn_check"]["reason"]


def test_interp_policy_syntax():
    assert parse_bn("recalibrate:interp").anchors == 5
    assert parse_bn("recalibrate:200:interp=4:batches").name == "recalibrate:200:interp=4:batches"
    for bad in ("recalibrate:interp=1", "recalibrate:interp=x", "recalibrate:interp=3:interp=3", "recalibrate:fast"):
        with pytest.raises(UsageError) as info:
            parse_bn(bad)
        assert "\n" not in str(info.value) and bad in str(info.value)
