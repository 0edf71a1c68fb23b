"""Engine exactness, slopes, BN policies, and the promise that the user's model is never modified."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bn_reference import authors_bn_update

from asymvalley import data as avdata
from asymvalley import models
from asymvalley import probe
from asymvalley.errors import UsageError
from asymvalley.store import RunStore


def _model(name: str, ds, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = models.create(name, input_shape=ds.input_shape, num_classes=ds.num_classes)
    if any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules()):
        m.train()
        with torch.no_grad():  # non-trivial running statistics
            for i in range(0, len(ds.train_x), 64):
                m(ds.train_x[i:i + 64] * 1.3 + 0.2)
    return m.eval()


@pytest.fixture(scope="module")
def ds():
    return avdata.load("synthetic")


def _reference(model, ds, u, alpha, split):
    """The anchors' way: copy weights into a fresh model, eval-mode forward over the whole split."""
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in fresh.named_parameters():
            p.add_(u.tensors[n], alpha=alpha)
    fresh.eval()
    x, y = ds.split(split)
    with torch.no_grad():
        out = fresh(x)
    return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("name", ["mlp", "cnn1d_bn", "cnn1d"])
@pytest.mark.parametrize("kind", ["gaussian", "filter"])
def test_losses_equal_plain_per_point_evaluation(ds, name, kind):
    m = _model(name, ds)
    u = probe.make_direction(kind, m, seed=3)
    alphas = [-1.0, -0.3, 0.0, 0.5, 1.0]
    res = probe.curve(m, ds, u, alphas, batch_size=50)  # batches that do not divide the splits
    for i, a in enumerate(alphas):
        for s in ("train", "test"):
            ref_loss, ref_acc = _reference(m, ds, u, a, s)
            assert res["splits"][s]["loss"][i] == pytest.approx(ref_loss, rel=1e-5)
            assert res["splits"][s]["accuracy"][i] == pytest.approx(ref_acc, abs=1e-12)


def test_result_layout_matches_curve_json(ds):
    m = _model("mlp", ds)
    u = probe.make_direction("gaussian", m, seed=1)
    res = probe.curve(m, ds, u, probe.linspace(-1, 1, 5), slopes=True)
    assert set(res) >= {"direction", "bn", "alphas", "splits"}
    assert {"kind", "seed", "norm"} <= set(res["direction"])
    assert res["bn"] == "eval" and len(res["alphas"]) == 5
    for s in ("train", "test"):
        assert set(res["splits"][s]) == {"loss", "accuracy", "slope"}
        assert all(isinstance(v, float) for v in res["splits"][s]["loss"])
    res2 = probe.curve(m, ds, u, probe.linspace(-1, 1, 5))
    assert "slope" not in res2["splits"]["train"]


@pytest.mark.parametrize("name", ["mlp", "cnn1d_bn"])
def test_jvp_slopes_equal_grad_dot_u_and_finite_differences(ds, name):
    m = _model(name, ds)
    u = probe.make_direction("gaussian", m, seed=2)
    alphas = [-0.5, 0.0, 0.7]
    res = probe.curve(m, ds, u, alphas, slopes=True, batch_size=64)
    x, y = ds.split("train")
    for i, a in enumerate(alphas):
        fresh = copy.deepcopy(m).eval()
        with torch.no_grad():
            for n, p in fresh.named_parameters():
                p.add_(u.tensors[n], alpha=a)
        loss = F.cross_entropy(fresh(x), y)
        grads = torch.autograd.grad(loss, list(fresh.parameters()))
        gdotu = sum(float((g * u.tensors[n]).sum()) for (n, _), g in zip(fresh.named_parameters(), grads))
        assert res["splits"]["train"]["slope"][i] == pytest.approx(gdotu, rel=1e-4, abs=1e-6)
        # central finite differences of the exact loss, in float64
        m64 = copy.deepcopy(m).double()
        u64 = {n: t.double() for n, t in u.tensors.items()}
        h = 1e-4

        def L(t):
            f = copy.deepcopy(m64)
            with torch.no_grad():
                for n, p in f.named_parameters():
                    p.add_(u64[n], alpha=t)
                return F.cross_entropy(f(x.double()), y).item()

        fd = (L(a + h) - L(a - h)) / (2 * h)
        assert res["splits"]["train"]["slope"][i] == pytest.approx(fd, rel=1e-3, abs=1e-5)


def _state(m):
    return ({k: v.clone() for k, v in m.state_dict().items()}, [x.training for x in m.modules()],
            [getattr(x, "momentum", None) for x in m.modules()])


def _same(a, b):
    sa, ma, moa = a
    sb, mb, mob = b
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert ma == mb and moa == mob


@pytest.mark.parametrize("bn", ["eval", "recalibrate", "recalibrate:50"])
@pytest.mark.parametrize("train_mode", [False, True])
def test_user_model_never_modified(ds, bn, train_mode):
    m = _model("cnn1d_bn", ds)
    m.train(train_mode)
    before = _state(m)
    u = probe.make_direction("filter", m, seed=0)
    probe.curve(m, ds, u, [-1, 0, 1], bn=bn, slopes=True)
    _same(before, _state(m))


def test_user_model_unchanged_after_exception(ds):
    m = _model("cnn1d_bn", ds)
    m.train()
    before = _state(m)
    u = probe.make_direction("gaussian", m, seed=0)
    calls = {"n": 0}

    def bad_loss(out, y):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("boom")
        return F.cross_entropy(out, y)

    for bn in ("eval", "recalibrate"):
        calls["n"] = 0
        with pytest.raises(RuntimeError, match="boom"):
            probe.curve(m, ds, u, [-1, 0, 1], bn=bn, loss_fn=bad_loss, batch_size=64)
        _same(before, _state(m))


def test_recalibrate_matches_update_bn(ds):
    from torch.optim.swa_utils import update_bn

    m = _model("cnn1d_bn", ds)
    u = probe.make_direction("filter", m, seed=5)
    a = 0.6
    res = probe.curve(m, ds, u, [-a, 0.0, a], bn="recalibrate", bn_batch_size=32)
    fresh = copy.deepcopy(m)
    with torch.no_grad():
        for n, p in fresh.named_parameters():
            p.add_(u.tensors[n], alpha=a)
    loader = [ds.train_x[i:i + 32] for i in range(0, len(ds.train_x), 32)]
    update_bn(loader, fresh)
    fresh.eval()
    with torch.no_grad():
        ref = F.cross_entropy(fresh(ds.test_x), ds.test_y).item()
    assert res["splits"]["test"]["loss"][2] == pytest.approx(ref, rel=1e-5)
    assert res["bn"] == "recalibrate"
    # recalibrate:N on a subset is close to the full recalibration, and differs from eval
    sub = probe.curve(m, ds, u, [-a, 0.0, a], bn="recalibrate:128", bn_batch_size=32)
    assert sub["bn"] == "recalibrate:128"
    assert max(abs(p - q) for p, q in zip(sub["splits"]["test"]["loss"], res["splits"]["test"]["loss"])) < 0.25


def test_data_as_dict_and_dataloader(ds):
    m = _model("mlp", ds)
    u = probe.make_direction("gaussian", m, seed=1)
    ref = probe.curve(m, ds, u, [-1, 0, 1])
    as_dict = probe.curve(m, {"train": (ds.train_x, ds.train_y), "test": (ds.test_x, ds.test_y)}, u, [-1, 0, 1])
    loaders = {s: torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*ds.split(s)), batch_size=33) for s in ("train", "test")}
    as_loader = probe.curve(m, loaders, u, [-1, 0, 1])
    for s in ("train", "test"):
        assert as_dict["splits"][s]["loss"] == pytest.approx(ref["splits"][s]["loss"], rel=1e-6)
        assert as_loader["splits"][s]["loss"] == pytest.approx(ref["splits"][s]["loss"], rel=1e-6)
    only_test = probe.curve(m, ds, u, [-1, 0, 1], splits=("test",))
    assert list(only_test["splits"]) == ["test"]


def test_custom_loss_function(ds):
    m = _model("mlp", ds)
    u = probe.make_direction("gaussian", m, seed=1)
    mse = lambda out, y: F.mse_loss(out, F.one_hot(y, ds.num_classes).float())  # noqa: E731
    res = probe.curve(m, ds, u, [-1, 0, 1], loss_fn=mse, splits=("test",))
    with torch.no_grad():
        ref = mse(m(ds.test_x), ds.test_y).item()
    assert res["splits"]["test"]["loss"][1] == pytest.approx(ref, rel=1e-5)


def test_plane_and_points(ds):
    m = _model("mlp", ds)
    u = probe.make_direction("gaussian", m, seed=1)
    v = probe.make_direction("gaussian", m, seed=2)
    pl = probe.plane(m, ds, [u, v], [-1, 0, 1], [-0.5, 0, 0.5, 1.0])
    assert len(pl["splits"]["train"]["loss"]) == 3 and len(pl["splits"]["train"]["loss"][0]) == 4
    pts = probe.points(m, ds, [u, v], [[1.0, 0.5], [0.0, 0.0]])
    assert pts["splits"]["train"]["loss"][0] == pytest.approx(pl["splits"]["train"]["loss"][2][2], rel=1e-6)
    assert pts["splits"]["train"]["loss"][1] == pytest.approx(pl["splits"]["train"]["loss"][1][1], rel=1e-6)


def test_bad_inputs_raise_usage_errors(ds):
    m = _model("mlp", ds)
    u = probe.make_direction("gaussian", m, seed=1)
    other = probe.make_direction("gaussian", models.create("mlp", input_shape=(1, 8), num_classes=4), seed=1)
    with pytest.raises(UsageError, match="shape"):
        probe.curve(m, ds, other, [-1, 0, 1])
    zero = probe.Direction({k: torch.zeros_like(t) for k, t in u.tensors.items()}, "gaussian", 0)
    with pytest.raises(UsageError, match="zero"):
        probe.curve(m, ds, zero, [-1, 0, 1])
    with pytest.raises(UsageError, match="split"):
        probe.curve(m, ds, u, [-1, 0, 1], splits=("val",))
    with pytest.raises(UsageError, match="at least 3"):
        probe.curve(m, ds, u, [0, 1])
    with pytest.raises(UsageError, match="A < B"):
        probe.linspace(1, -1, 5)
    with pytest.raises(UsageError, match="BN policy"):
        probe.curve(m, ds, u, [-1, 0, 1], bn="recalibrate:x")


class _Counting(nn.Module):
    """Counts forward calls so resume can be checked."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_store_resume_does_not_recompute(ds, tmp_path):
    m = _Counting(_model("mlp", ds))
    u = probe.make_direction("gaussian", m, seed=1)
    alphas = probe.linspace(-1, 1, 11)
    calls = {"n": 0}

    def dying_loss(out, y):  # one call per batch; 2 batches per point (train, test) at batch_size=256
        calls["n"] += 1
        if calls["n"] > 2 * 7:  # dies in point 7 (0-based), in the chunk [6, 7]: chunks [0,1] [2,3] [4,5] are stored
            raise KeyboardInterrupt
        return F.cross_entropy(out, y)

    with pytest.raises(KeyboardInterrupt):
        probe.curve(m, ds, u, alphas, loss_fn=dying_loss, store=tmp_path, chunk_points=2, batch_size=256, curve_id="c1",
                    fast=False)  # the generic kernel: one module call per batch (a traced forward would not count)
    st = RunStore(tmp_path)
    done = st.done_indices("c1", "train")
    assert done == {0, 1, 2, 3, 4, 5} and st.done_indices("c1", "test") == done
    st.close()
    m.calls = 0
    res = probe.curve(m, ds, u, alphas, loss_fn=F.cross_entropy, store=tmp_path, chunk_points=2, batch_size=256, curve_id="c1",
                      fast=False)
    assert m.calls == 2 * (11 - 6) + 1  # only the unfinished points were evaluated (+1: the two-sample input check)
    ref = probe.curve(m, ds, u, alphas, batch_size=256)
    assert res["splits"]["test"]["loss"] == pytest.approx(ref["splits"]["test"]["loss"], rel=1e-7)
    # derived curve ids: same config -> same id, different config -> different id
    r1 = probe.curve(m, ds, u, alphas, store=tmp_path)
    r2 = probe.curve(m, ds, u, alphas, store=tmp_path)
    r3 = probe.curve(m, ds, u, alphas, store=tmp_path, bn="recalibrate")
    assert r1["curve_id"] == r2["curve_id"] != r3["curve_id"]
    assert r1["curve_id"] != probe.curve(m, ds, u, alphas[:-1], store=tmp_path)["curve_id"]


@pytest.mark.parametrize("name", ["cnn1d_bn", "cnn1d"])
def test_cpu_fast_path_matches_plain_kernels(ds, name):
    m = _model(name, ds)
    u = probe.make_direction("filter", m, seed=1)
    fast = probe.curve(m, ds, u, [-1, 0, 1], slopes=True, fast=True)
    plain = probe.curve(m, ds, u, [-1, 0, 1], slopes=True, fast=False)
    for s in ("train", "test"):
        assert fast["splits"][s]["loss"] == pytest.approx(plain["splits"][s]["loss"], rel=1e-5)
        assert fast["splits"][s]["slope"] == pytest.approx(plain["splits"][s]["slope"], rel=1e-4, abs=1e-6)
        assert fast["splits"][s]["accuracy"] == plain["splits"][s]["accuracy"]


@pytest.mark.parametrize("fast", [None, False])
def test_recalibrate_weights_batches_by_samples_like_the_authors(ds, fast):
    m = _model("cnn1d_bn", ds)
    u = probe.make_direction("filter", m, seed=5)
    bs = 48  # the last training batch is short: sample and batch weighting differ
    assert len(ds.train_x) % bs
    a = 0.4
    res = probe.curve(m, ds, u, [-a, 0.0, a], bn="recalibrate", bn_batch_size=bs, fast=fast)
    fresh = copy.deepcopy(m)
    with torch.no_grad():
        for n, p in fresh.named_parameters():
            p.add_(u.tensors[n], alpha=a)
    authors_bn_update(fresh, [ds.train_x[i:i + bs] for i in range(0, len(ds.train_x), bs)])
    with torch.no_grad():
        out = fresh(ds.test_x)
    ref = F.cross_entropy(out, ds.test_y, reduction="sum").double().item() / len(ds.test_y)
    assert res["splits"]["test"]["loss"][2] == pytest.approx(ref, rel=1e-6)
    assert res["kernels"] == ("generic" if fast is False else "fused")
    batches = probe.points(m, ds, u, [[a]], bn="recalibrate:batches", bn_batch_size=bs, fast=fast)
    assert batches["bn"] == "recalibrate:batches"
    assert batches["splits"]["test"]["loss"][0] != pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("bn", ["eval", "recalibrate"])
@pytest.mark.parametrize("fast", [None, False])
def test_a_curve_on_fewer_splits_is_read_from_a_stored_wider_one(ds, tmp_path, monkeypatch, bn, fast):
    """The training split alone, after the same request on train and test: answered from the store (nothing
    evaluated), with the very numbers that computing the training split alone gives, and stored under its own id."""
    from asymvalley.probe import engine

    m = _model("cnn1d_bn", ds)
    u = probe.make_direction("filter", m, seed=2)
    alphas = probe.linspace(-1, 1, 7)
    wide = probe.curve(m, ds, u, alphas, splits=("train", "test"), bn=bn, fast=fast, store=tmp_path)
    alone = probe.curve(m, ds, u, alphas, splits=("train",), bn=bn, fast=fast)  # no store: computed
    evaluated = []
    real = engine._run_chunks
    monkeypatch.setattr(engine, "_run_chunks", lambda kernel, todo, *a: (evaluated.extend(todo), real(kernel, todo, *a))[1])
    narrow = probe.curve(m, ds, u, alphas, splits=("train",), bn=bn, fast=fast, store=tmp_path)
    assert evaluated == [] and narrow["curve_id"] != wide["curve_id"]
    assert narrow["splits"]["train"] == alone["splits"]["train"] == wide["splits"]["train"]  # bit for bit
    with RunStore(tmp_path) as st:
        assert sorted(r["idx"] for r in st.get_points(narrow["curve_id"])) == list(range(7))
    other = probe.curve(m, ds, u, alphas[:-1], splits=("train",), bn=bn, fast=fast, store=tmp_path)  # not a sub-request
    assert len(evaluated) == 6 and other["curve_id"] != narrow["curve_id"]
