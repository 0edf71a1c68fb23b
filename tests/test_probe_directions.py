"""Direction kinds: normalisation rules, metadata, save/load, and the Hessian against a dense reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from asymvalley import data as avdata
from asymvalley import models, probe
from asymvalley.errors import UsageError
from asymvalley.probe.space import ParamSpace


@pytest.fixture(scope="module")
def ds():
    return avdata.load("synthetic")


@pytest.fixture
def cnn(ds):
    torch.manual_seed(0)
    return models.create("cnn1d_bn", input_shape=ds.input_shape, num_classes=ds.num_classes)


def test_registry_lists_all_kinds():
    assert set(probe.direction_names()) >= {"gaussian", "uniform", "filter", "layer", "interp", "inter_plus_rand", "pca", "hessian"}
    with pytest.raises(UsageError, match="known"):
        probe.make_direction("nope", nn.Linear(2, 2))


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
def test_unit_random_directions(cnn, kind):
    u = probe.make_direction(kind, cnn, seed=4)
    assert u.norm == pytest.approx(1.0, rel=1e-6) and u.kind == kind and u.seed == 4
    again = probe.make_direction(kind, cnn, seed=4)
    assert all(torch.equal(u.tensors[k], again.tensors[k]) for k in u.tensors)
    other = probe.make_direction(kind, cnn, seed=5)
    assert not torch.equal(u.tensors["0.weight"], other.tensors["0.weight"])
    if kind == "uniform":
        assert all(bool((t >= 0).all()) for t in u.tensors.values())  # the paper's (0, 1): not zero-mean


def test_filter_normalisation(cnn):
    space = ParamSpace(cnn)
    u = probe.make_direction("filter", cnn, seed=0)
    for n in space.names:
        w, d = space.center[n], u.tensors[n]
        if w.dim() <= 1:
            assert bool((d == 0).all()), n  # biases / BN affine zeroed by default
        else:
            wf, df = w.reshape(w.shape[0], -1).norm(dim=1), d.reshape(d.shape[0], -1).norm(dim=1)
            assert torch.allclose(wf, df, rtol=1e-5), n
    keep = probe.make_direction("filter", cnn, seed=0, bias="keep")
    for n in space.names:
        w = space.center[n]
        if w.dim() <= 1:  # each 1-D parameter normalised once, as a unit
            assert float(keep.tensors[n].norm()) == pytest.approx(float(w.norm()), rel=1e-5)
    assert keep.info["bias"] == "keep"


def test_layer_normalisation(cnn):
    space = ParamSpace(cnn)
    u = probe.make_direction("layer", cnn, seed=0, bias="keep")
    for n in space.names:
        assert float(u.tensors[n].norm()) == pytest.approx(float(space.center[n].norm()), rel=1e-5)


def test_interp_and_inter_plus_rand(ds):
    torch.manual_seed(0)
    a = models.create("mlp", input_shape=ds.input_shape, num_classes=4)
    b = models.create("mlp", input_shape=ds.input_shape, num_classes=4)
    sa, sb = dict(a.named_parameters()), dict(b.named_parameters())
    u = probe.make_direction("interp", a, start=sa, end=sb, names=("swa", "sgd"))
    res = probe.curve(a, ds, u, [0.0, 0.5, 1.0], splits=("test",))
    with torch.no_grad():
        lb = F.cross_entropy(b(ds.test_x), ds.test_y).item()
    assert res["splits"]["test"]["loss"][2] == pytest.approx(lb, rel=1e-5)  # alpha = 1 is the end point
    assert u.describe()["from"] == "swa"
    ipr = probe.make_direction("inter_plus_rand", a, seed=3, start=sa, end=sb)
    g = probe.make_direction("gaussian", a, seed=3)
    inter = {k: (sb[k] - sa[k]).detach() for k in sa}
    nrm = math.sqrt(sum(float(t.pow(2).sum()) for t in inter.values()))
    for k in sa:
        assert torch.allclose(ipr.tensors[k], inter[k] / nrm + g.tensors[k], atol=1e-6)
    with pytest.raises(UsageError, match="zero"):
        probe.make_direction("interp", a, start=sa, end=sa)


def test_pca_of_a_line_trajectory(ds):
    torch.manual_seed(0)
    m = models.create("mlp", input_shape=ds.input_shape, num_classes=4, widths=(8,))
    w = {k: v.detach().clone() for k, v in m.named_parameters()}
    e = {k: torch.randn_like(v) for k, v in w.items()}
    traj = [{k: w[k] + t * e[k] for k in w} for t in (-3.0, -2.0, -1.0, 0.0)]
    u = probe.make_direction("pca", m, trajectory=traj)
    en = math.sqrt(sum(float(t.pow(2).sum()) for t in e.values()))
    cos = sum(float((u.tensors[k] * e[k]).sum()) for k in w) / en
    assert cos == pytest.approx(1.0, abs=1e-4) and u.norm == pytest.approx(1.0, rel=1e-5)


def test_hessian_top_eigenvector_matches_dense(ds):
    torch.manual_seed(0)
    m = models.create("mlp", input_shape=ds.input_shape, num_classes=4, widths=(6,))
    space = ParamSpace(m)
    x, y = ds.train_x, ds.train_y

    def f(flat):
        return F.cross_entropy(torch.func.functional_call(m, space.unflatten(flat), (x,)), y)

    H = torch.autograd.functional.hessian(f, space.flatten(space.center)).double()
    evals, evecs = torch.linalg.eigh(H)
    u = probe.make_direction("hessian", m, seed=0, x=x, y=y, iterations=space.numel, component=0)
    v = space.flatten(u.tensors).double()
    assert u.info["eigenvalue"] == pytest.approx(float(evals[-1]), rel=1e-3)
    assert abs(float(v @ evecs[:, -1])) == pytest.approx(1.0, abs=1e-3)


def _bn_cnn_with_statistics() -> nn.Module:
    torch.manual_seed(3)
    m = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, 3))
    with torch.no_grad():  # running statistics and affine parameters far from their defaults
        m[1].running_mean.uniform_(-0.5, 0.5), m[1].running_var.uniform_(0.3, 2.0)
        m[1].weight.uniform_(0.5, 1.5), m[1].bias.uniform_(-0.3, 0.3)
    return m.eval()


@pytest.mark.parametrize("keep_graph_bytes", [0, 2**30])
def test_hessian_vector_products_through_eval_batchnorm_match_autograd(keep_graph_bytes):
    """The HVP (recorded under the CPU fast path: BN as its affine map; graphs kept between products or rebuilt) equals autograd's own
    HVP of the unmodified module, in several mini-batches, for several vectors; the module is left as it was."""
    from asymvalley.probe.hessian import hvp_fn

    m = _bn_cnn_with_statistics()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    space = ParamSpace(m)
    x, y = torch.randn(50, 1, 8), torch.randint(0, 3, (50,))
    w = space.flatten(space.center).detach()

    def loss(flat):
        return F.cross_entropy(torch.func.functional_call(m, space.unflatten(flat), (x,)), y)

    hvp = hvp_fn(m, space, x, y, batch_size=16, keep_graph_bytes=keep_graph_bytes)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = torch.randn(space.numel, generator=g)
        ref = torch.autograd.functional.hvp(loss, w, v)[1]
        assert torch.allclose(hvp(v), ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
    assert all(torch.equal(before[k], t) for k, t in m.state_dict().items()) and not m.training


def _live_tensors() -> int:
    import gc

    gc.collect()
    return sum(isinstance(o, torch.Tensor) for o in gc.get_objects())


def test_kept_hessian_graphs_are_freed_with_their_function():
    """Graphs kept between products die with the HVP function: a kept graph tied into reference cycles (as one
    built under a saved-tensor hook is) leaked ~25 MB per Lanczos run in a full reproduction."""
    from asymvalley.probe.hessian import hvp_fn

    m = _bn_cnn_with_statistics()
    space = ParamSpace(m)
    x, y = torch.randn(50, 1, 8), torch.randint(0, 3, (50,))
    v = torch.randn(space.numel, generator=torch.Generator().manual_seed(0))

    def run() -> None:
        hvp = hvp_fn(m, space, x, y, batch_size=16)
        for _ in range(3):
            hvp(v)

    run()  # warm-up: whatever torch caches on first use
    before = _live_tensors()
    for _ in range(3):
        run()
    assert _live_tensors() <= before


def test_hessian_components_share_one_lanczos_run_and_a_changed_model_gets_its_own(ds, monkeypatch):
    from asymvalley.probe import hessian as hmod

    torch.manual_seed(0)
    m = models.create("mlp", input_shape=ds.input_shape, num_classes=4, widths=(6,))
    x, y = ds.train_x, ds.train_y
    runs = []
    real = hmod._lanczos
    monkeypatch.setattr(hmod, "_lanczos", lambda *a: runs.append(1) or real(*a))
    hmod._LANCZOS_CACHE.clear()
    us = [probe.make_direction("hessian", m, seed=0, x=x, y=y, iterations=12, component=i) for i in range(3)]
    assert len(runs) == 1
    hmod._LANCZOS_CACHE.clear()
    fresh = probe.make_direction("hessian", m, seed=0, x=x, y=y, iterations=12, component=2)
    assert torch.equal(ParamSpace(m).flatten(fresh.tensors), ParamSpace(m).flatten(us[2].tensors))
    assert [u.info["eigenvalue"] for u in us] == sorted([u.info["eigenvalue"] for u in us], reverse=True)
    with torch.no_grad():
        next(m.parameters()).add_(0.5)
    probe.make_direction("hessian", m, seed=0, x=x, y=y, iterations=12, component=0)
    assert len(runs) == 3  # another point: its own run


def test_save_load_roundtrip_weights_only(cnn, tmp_path):
    u = probe.make_direction("filter", cnn, seed=7)
    u.save(tmp_path / "u.pt")
    torch.load(tmp_path / "u.pt", weights_only=True)  # plain content
    v = probe.load_direction(tmp_path / "u.pt")
    assert v.describe() == u.describe()
    assert all(torch.equal(u.tensors[k], v.tensors[k]) for k in u.tensors)
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(UsageError):
        probe.load_direction(tmp_path / "bad.pt")


def test_direction_specs_follow_each_kinds_declared_syntax(tmp_path):
    import torch.nn as nn

    from asymvalley.errors import UsageError
    from asymvalley.probe.direction_spec import parse_spec, resolve

    spec = parse_spec("interp:sgd->/runs/b/checkpoints/end.pt")  # an end point given as a .pt path is not a direction file
    assert spec.kind == "interp" and spec.options["pair"] == ("sgd", "/runs/b/checkpoints/end.pt") and spec.start == "sgd"
    assert parse_spec(str(tmp_path / "u.pt")).kind == "file"
    for bad in ("filter:maybe", "pca:x", "gaussian:3", "interp:sgd", "nosuchkind"):
        with pytest.raises(UsageError):
            parse_spec(bad)

    class Ends:  # what the resolver asks a caller for, only when the kind needs it
        def endpoints(self, a, b):
            return {n: torch.zeros_like(p) for n, p in m.named_parameters()}, {n: torch.ones_like(p) for n, p in m.named_parameters()}

    m = nn.Linear(3, 2)
    u = resolve("interp:a->b", m, Ends())
    assert u.kind == "interp" and u.info["from"] == "a" and float(u.tensors["weight"].min()) == 1.0
    with pytest.raises(UsageError, match="needs endpoints"):
        resolve("interp:a->b", m)
    path = tmp_path / "u.pt"
    resolve("filter:keep", m, seed=3).save(path)
    assert resolve(str(path), m).info["bias"] == "keep"
