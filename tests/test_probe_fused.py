"""The fused CPU evaluation path: same numbers as the module's own forward, used only where it applies."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from asymvalley import data as avdata
from asymvalley import models
from asymvalley import probe
from asymvalley.probe.fused import compile_chain, cross_entropy_stats, few_threads, fused_ops_available

pytestmark = pytest.mark.skipif(not fused_ops_available(), reason="this torch build has no oneDNN fused kernels")


def _settle_bn(m: nn.Module, x: torch.Tensor) -> nn.Module:
    """Non-trivial BN running statistics and affine parameters, then eval mode."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.affine:
                mod.weight.copy_(1 + 0.3 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=g))
        m.train()
        for i in range(0, len(x), 64):
            m(x[i:i + 64] * 1.3 + 0.2)
    return m.eval()


class _Custom(nn.Sequential):
    def forward(self, x):  # not the chain its children suggest
        return super().forward(x) * 2.0


def _zoo():
    """(name, model factory, input shape) for chains and non-chains."""
    return {
        "mlp": (lambda: models.create("mlp", input_shape=(1, 40), num_classes=10), (1, 40)),
        "cnn1d": (lambda: models.create("cnn1d", input_shape=(1, 40), num_classes=10), (1, 40)),
        "cnn1d_bn": (lambda: models.create("cnn1d_bn", input_shape=(1, 40), num_classes=10), (1, 40)),
        "cnn1d_bn_3ch": (lambda: models.create("cnn1d_bn", input_shape=(3, 24), num_classes=5), (3, 24)),
        "cnn2d_bn": (lambda: models.create("cnn2d_bn", input_shape=(1, 8, 8), num_classes=10), (1, 8, 8)),
        "cnn2d": (lambda: models.create("cnn2d", input_shape=(3, 8, 8), num_classes=10), (3, 8, 8)),
        "linear_bn_nested": (lambda: nn.Sequential(
            nn.Flatten(), nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU()), nn.Dropout(0.5),
            nn.Identity(), nn.Linear(16, 16, bias=False), nn.BatchNorm1d(16, affine=False), nn.ReLU(), nn.Linear(16, 4)), (12,)),
        "conv_bias_bn_no_relu": (lambda: nn.Sequential(
            nn.Conv2d(2, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.Conv2d(6, 4, 3, padding=(1, 0)), nn.ReLU(),
            nn.Flatten(), nn.Linear(4 * 3 * 1, 3)), (2, 5, 5)),
    }


class _UserResNet(nn.Module):
    """A user's residual net: identity shortcut written ``out += x`` / ``torch.add``, a projection shortcut."""

    def __init__(self, add: str = "iadd"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.c1, self.b1 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.proj = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16 * 3 * 3, 4)
        self.add = add

    def forward(self, x):
        x = self.stem(x)
        out = F.relu(self.b1(self.c1(x)))
        out = self.b2(self.c2(out))
        if self.add == "iadd":
            out += x
        else:
            out = torch.add(out, x)
        x = torch.relu(out)
        x = F.relu(self.proj(x) + self.down(x))  # shortcut first, body second
        return self.fc(x.view(x.size(0), -1))


def _residual_zoo():
    return {
        "resnet20_A": (lambda: models.create("resnet20", input_shape=(3, 8, 8), num_classes=10), (3, 8, 8)),
        "resnet20_B": (lambda: models.create("resnet20", input_shape=(3, 8, 8), num_classes=10, shortcut="B"), (3, 8, 8)),
        "user_iadd": (lambda: _UserResNet("iadd"), (2, 6, 6)),
        "user_torch_add": (lambda: _UserResNet("torch.add"), (2, 6, 6)),
    }


def _compiled(name: str, n: int):
    """(model with settled BN, its fused chain, ``n`` random inputs)."""
    make, shape = {**_zoo(), **_residual_zoo()}[name]
    torch.manual_seed(0)
    m = make()
    x = torch.randn(n, *shape)
    _settle_bn(m, x)
    return m, compile_chain(m, shape), x


@pytest.mark.parametrize("name", list(_zoo()))
def test_fused_chain_reproduces_the_module_forward(name):
    m, chain, x = _compiled(name, 200)
    assert chain is not None
    params, bufs = dict(m.named_parameters()), dict(m.named_buffers())
    with torch.no_grad():
        ref = m(x)
        got = chain.bind(params, bufs)(x)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.parametrize("name", ["mlp", "cnn1d_bn", "linear_bn_nested"])
def test_head_reuse_equals_direct_evaluation_on_a_plane(name):
    m, chain, x = _compiled(name, 100)
    center, bufs = {n: p.detach() for n, p in m.named_parameters()}, dict(m.named_buffers())
    g = torch.Generator().manual_seed(2)
    dirs = [{n: torch.randn(p.shape, generator=g) * 0.1 for n, p in center.items()} for _ in range(2)]
    for a, b in [(0.0, 0.0), (0.7, -1.3), (-2.0, 0.5)]:
        point = {n: center[n] + a * dirs[0][n] + b * dirs[1][n] for n in center}
        bound = chain.bind(point, bufs, [a, b])
        with torch.no_grad():
            terms = [chain.head_terms(x, center)] + [chain.head_terms(x, d) for d in dirs]
            via_terms = bound.from_terms(terms)
            direct = torch.func.functional_call(m, ({**point}, bufs), (x,))
        assert torch.allclose(via_terms, direct, rtol=1e-4, atol=1e-5 * float(direct.abs().max()))


def test_non_chains_are_left_to_the_generic_path():
    torch.manual_seed(0)
    # pre-activation blocks (BN before the convolution: nothing to fold it into) and DenseNet's concatenations
    assert compile_chain(models.create("preresnet110", input_shape=(3, 32, 32), num_classes=10), (3, 32, 32)) is None
    assert compile_chain(models.create("densenet_bc100", input_shape=(3, 32, 32), num_classes=10), (3, 32, 32)) is None
    assert compile_chain(_Custom(nn.Flatten(), nn.Linear(4, 2)), (4,)) is None
    assert compile_chain(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)), (4,)) is None
    assert compile_chain(nn.Sequential(nn.Conv1d(2, 4, 3, groups=2), nn.Flatten(), nn.Linear(8, 2)), (2, 4)) is None
    assert compile_chain(nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)), (4,)) is None  # ReLU with no layer before it


def test_cross_entropy_stats_match_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 7, generator=g) * 5
    y = torch.randint(0, 7, (300,), generator=g)
    loss_sum, correct = cross_entropy_stats(logits, y)
    assert float(loss_sum) == pytest.approx(float(F.cross_entropy(logits, y, reduction="sum")), rel=1e-6)
    assert int(correct) == int((logits.argmax(1) == y).sum())


@pytest.fixture(scope="module")
def ds():
    return avdata.load("synthetic")


def _trained(name, ds):
    torch.manual_seed(0)
    m = models.create(name, input_shape=ds.input_shape, num_classes=ds.num_classes)
    return _settle_bn(m, ds.train_x)


@pytest.mark.parametrize("name,kernels", [("mlp", "fused+head-reuse"), ("cnn1d_bn", "fused"), ("cnn1d", "fused")])
@pytest.mark.parametrize("bn", ["eval", "recalibrate:200"])
def test_engine_fused_path_matches_the_generic_path(ds, name, kernels, bn):
    if not few_threads():  # many threads: no first-layer reuse; Linear-only chains stay generic
        kernels = "fused" if name != "mlp" else "generic"
    m = _trained(name, ds)
    u, v = probe.make_direction("filter", m, seed=1), probe.make_direction("gaussian", m, seed=2)
    alphas = [-1.0, -0.5, 0.0, 0.25, 0.5, 1.0]
    fused = probe.curve(m, ds, u, alphas, bn=bn, batch_size=70)
    plain = probe.curve(m, ds, u, alphas, bn=bn, batch_size=70, fast=False)
    assert fused["kernels"] == kernels and plain["kernels"] == "generic"
    for s in ("train", "test"):
        assert fused["splits"][s]["loss"] == pytest.approx(plain["splits"][s]["loss"], rel=1e-5)
        assert fused["splits"][s]["accuracy"] == pytest.approx(plain["splits"][s]["accuracy"], abs=2.5 / len(ds.test_x))
    grid = [-1.0, 0.0, 1.0]
    pf = probe.plane(m, ds, [u, v], grid, grid, bn=bn)
    pp = probe.plane(m, ds, [u, v], grid, grid, bn=bn, fast=False)
    for s in ("train", "test"):
        assert torch.allclose(torch.tensor(pf["splits"][s]["loss"]), torch.tensor(pp["splits"][s]["loss"]), rtol=1e-5)


def test_slopes_run_forward_mode_through_the_chain_and_custom_forward_uses_the_generic_path(ds):
    m = _trained("mlp", ds)
    u = probe.make_direction("filter", m, seed=1)
    assert probe.curve(m, ds, u, [-1, 0, 1], slopes=True)["kernels"] == "fused-jvp"
    custom = _Custom(*list(m.children()))
    res = probe.points(custom, ds, [u], [[0.0]])
    assert res["kernels"] == "generic"
    with torch.no_grad():
        ref = F.cross_entropy(custom(ds.test_x), ds.test_y).item()
    assert res["splits"]["test"]["loss"][0] == pytest.approx(ref, rel=1e-5)


def test_forward_hooks_keep_the_generic_path(ds):
    m = _trained("mlp", ds)
    seen = []
    handle = m[2].register_forward_hook(lambda mod, inp, out: seen.append(out.shape[0]))
    try:
        res = probe.curve(m, ds, probe.make_direction("filter", m, seed=1), [-1, 0, 1])
    finally:
        handle.remove()
    assert res["kernels"] == "generic"
    assert sum(seen) >= 3 * (len(ds.train_x) + len(ds.test_x))  # the user's hook saw every evaluated sample


@pytest.mark.parametrize("name", ["mlp", "linear_bn_nested"])
def test_many_threads_use_plain_linear_kernels_with_the_same_result(name):
    m, _, x = _compiled(name, 150)
    params, bufs = dict(m.named_parameters()), dict(m.named_buffers())
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        assert not few_threads()
        chain = compile_chain(m, tuple(x.shape[1:]))
        with torch.no_grad():
            got = chain.bind(params, bufs)(x)
    finally:
        torch.set_num_threads(old)
    with torch.no_grad():
        ref = m(x)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_compiling_leaves_a_train_mode_module_untouched():
    torch.manual_seed(0)
    m = models.create("cnn1d_bn", input_shape=(1, 40), num_classes=10).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    assert compile_chain(m, (1, 40)) is not None
    assert m.training and all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_frozen_layers_fall_back_to_the_generic_path(ds):
    m = _trained("mlp", ds)
    m[1].weight.requires_grad_(False)  # not part of the probed weight space
    u = probe.make_direction("filter", m, seed=1)
    res = probe.curve(m, ds, u, [-1.0, 0.0, 1.0])
    assert res["kernels"] == "generic"
    with torch.no_grad():
        ref = F.cross_entropy(m(ds.test_x), ds.test_y).item()
    assert res["splits"]["test"]["loss"][1] == pytest.approx(ref, rel=1e-5)


def test_first_layer_cache_across_chunks_changes_nothing(ds, monkeypatch):
    import asymvalley.probe.fused_sweep as fused_sweep

    m = _trained("mlp", ds)
    u = probe.make_direction("filter", m, seed=1)
    alphas = probe.linspace(-1, 1, 11)
    cached = probe.curve(m, ds, u, alphas, chunk_points=4, batch_size=90)
    monkeypatch.setattr(fused_sweep, "HEAD_CACHE_BYTES", 0)
    fresh = probe.curve(m, ds, u, alphas, chunk_points=4, batch_size=90)
    assert cached["splits"] == fresh["splits"]


# --- found by review: modules used twice, Linear on 3-D input, cancellation, chunk dependence --------

def _reference_points(model, data, direction, alphas):
    """Deep copy, w + a u, eval mode, float64 cross-entropy over each split."""
    import copy

    out = {s: [] for s in data}
    for a in alphas:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.add_(direction.tensors[n], alpha=a)
        m.eval()
        with torch.no_grad():
            for s, (x, y) in data.items():
                out[s].append(float(F.cross_entropy(m(x).double(), y)))
    return out


def test_a_module_used_twice_is_evaluated_as_the_module_does():
    from asymvalley.probe.directions import Direction

    torch.manual_seed(0)
    act = nn.ReLU()
    shared = nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 8), act, nn.Linear(8, 3))
    with torch.no_grad():
        shared[2].bias.fill_(10.0)  # the second ReLU does nothing at the centre, only away from it
    u = Direction({n: torch.full_like(p, -20.0) if n == "2.bias" else torch.zeros_like(p)
                   for n, p in shared.named_parameters()}, "bias")
    data = {s: (torch.randn(60, 4), torch.randint(0, 3, (60,))) for s in ("train", "test")}
    res = probe.points(shared, data, [u], [[0.0], [1.0]])
    ref = _reference_points(shared, data, u, [0.0, 1.0])
    assert res["kernels"] != "fused" and compile_chain(shared, (4,)) is None
    for s in data:
        assert res["splits"][s]["loss"] == pytest.approx(ref[s], rel=1e-5)


@pytest.mark.parametrize("fast", [None, False])
def test_tied_linear_keeps_the_users_parameters(fast):
    torch.manual_seed(0)
    lin = nn.Linear(4, 4)
    tied = nn.Sequential(lin, nn.ReLU(), lin)
    before = [(n, p) for n, p in tied.named_parameters(remove_duplicate=False)]
    data = {s: (torch.randn(50, 4).abs(), torch.randint(0, 4, (50,))) for s in ("train", "test")}
    u = probe.make_direction("gaussian", tied, seed=3)
    res = probe.points(tied, data, [u], [[0.0], [1.0]], fast=fast)
    after = [(n, p) for n, p in tied.named_parameters(remove_duplicate=False)]
    assert [(n, id(p)) for n, p in before] == [(n, id(p)) for n, p in after]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for _, p in after)
    ref = _reference_points(tied, data, u, [0.0, 1.0])
    for s in data:
        assert res["splits"][s]["loss"] == pytest.approx(ref[s], rel=1e-5)


def test_batchnorm_after_a_linear_on_3d_input_is_not_folded_on_the_wrong_axis():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
    assert compile_chain(m, (8, 5)) is None
    data = {s: (torch.randn(k, 8, 5), torch.randint(0, 3, (k,))) for s, k in (("train", 300), ("test", 200))}
    u = probe.make_direction("gaussian", m, seed=1)
    res = probe.points(m, data, [u], [[0.0], [0.5], [1.0]])
    ref = _reference_points(m, data, u, [0.0, 0.5, 1.0])
    for s in data:
        assert res["splits"][s]["loss"] == pytest.approx(ref[s], rel=1e-5)


@pytest.mark.parametrize("offset", [0.0, 10.0, 30.0, 1000.0])
def test_cross_entropy_stats_keep_precision_on_shifted_confident_logits(offset):
    """Softmax ignores a common shift of the logits; the loss sum must too (no cancellation of big sums)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8192, 10, generator=g)
    y = torch.randint(0, 10, (8192,), generator=g)
    logits[torch.arange(8192), y] += 6.0  # confident: small per-sample losses
    exact = float(F.cross_entropy(logits.double(), y, reduction="sum"))
    loss_sum, _ = cross_entropy_stats(logits + offset, y)
    assert float(loss_sum) == pytest.approx(exact, rel=2e-6)


def test_a_points_numbers_do_not_depend_on_its_chunk():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    data = {s: (torch.randn(k, 20), torch.randint(0, 3, (k,))) for s, k in (("train", 600), ("test", 200))}
    u = probe.make_direction("gaussian", m, seed=2)
    coords = [[a] for a in (-1.0, -0.3, 0.2, 0.7, 1.3)]
    runs = [probe.points(m, data, [u], coords, chunk_points=c) for c in (1, 2, 3, 8)]
    assert len({r["kernels"] for r in runs}) == 1
    assert all(r["splits"] == runs[0]["splits"] for r in runs)


@pytest.mark.parametrize("name", list(_zoo()) + list(_residual_zoo()))
def test_forward_mode_through_the_chain_equals_torch_func_jvp(name):
    from asymvalley.probe.fused_dual import bind_dual

    m, chain, x = _compiled(name, 120)
    params, bufs = {n: p.detach() for n, p in m.named_parameters()}, dict(m.named_buffers())
    g = torch.Generator().manual_seed(3)
    u = {n: torch.randn(p.shape, generator=g) for n, p in params.items()}
    with torch.no_grad():
        got, dgot = bind_dual(chain, params, bufs, u)(x)
    ref, dref = torch.func.jvp(lambda p: torch.func.functional_call(m, (p, bufs), (x,)), (params,), (u,))
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    assert torch.allclose(dgot, dref, rtol=1e-4, atol=1e-4 * float(dref.abs().max()))


def _fp64_slopes(m: nn.Module, ds, u: dict, alphas) -> torch.Tensor:
    """Per point and split, ``d/da`` of the mean loss by `torch.func.jvp` in float64 (the reference)."""
    import copy

    m64 = copy.deepcopy(m).double().eval()
    params = {n: p.detach() for n, p in m64.named_parameters()}
    bufs = dict(m64.named_buffers())
    u64 = {n: t.double() for n, t in u.items()}
    rows = []
    with torch.no_grad():
        for a in alphas:
            point = {n: params[n] + a * u64[n] for n in params}
            row = []
            for s in ("train", "test"):
                x, y = ds.split(s)
                x = ds.prepare(x).double()
                _, d = torch.func.jvp(lambda p: F.cross_entropy(torch.func.functional_call(m64, (p, bufs), (x,)), y),
                                      (point,), (u64,))
                row.append(float(d))
            rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("name", ["cnn1d_bn", "mlp"])
def test_engine_slopes_agree_with_a_float64_jvp_loop_and_finite_differences(ds, name):
    """Slopes of a fused-jvp curve vs an fp64 `torch.func.jvp` loop: error <= 1e-5 of the curve's largest slope.

    The measure is relative to the curve's scale, not pointwise: a slope passing near zero along the line
    has no relative precision in fp32 (the bench's 3.3e-4 pointwise difference: fp32 rounding of a mean of
    per-sample slopes that cancel, the same in a plain fp32 jvp loop)."""
    m = _trained(name, ds)
    u = probe.make_direction("filter", m, seed=1)
    alphas = [-1.0, -0.4, 0.0, 0.3, 1.0]
    res = probe.curve(m, ds, u, alphas, slopes=True)
    assert res["kernels"] == "fused-jvp"
    got = torch.tensor([[res["splits"][s]["slope"][i] for s in ("train", "test")] for i in range(len(alphas))], dtype=torch.float64)
    ref = _fp64_slopes(m, ds, u.tensors, alphas)
    scale = float(ref.abs().max())
    assert float((got - ref).abs().max()) <= 1e-5 * scale
    # the reference itself against central differences of the fp64 loss (step 1e-7: ReLU kinks crossed within
    # +-h make the error O(h), rounding ~1e-16 / h)
    h, m64 = 1e-7, _trained(name, ds).double()
    x, y = ds.prepare(ds.split("test")[0]).double(), ds.split("test")[1]
    params = {n: p.detach() for n, p in m64.named_parameters()}
    with torch.no_grad():
        def loss(a):
            return float(F.cross_entropy(torch.func.functional_call(
                m64, ({n: params[n] + a * u.tensors[n].double() for n in params}, dict(m64.named_buffers())), (x,)), y))

        fd = torch.tensor([(loss(a + h) - loss(a - h)) / (2 * h) for a in alphas], dtype=torch.float64)
    assert float((fd - ref[:, 1]).abs().max()) <= 1e-5 * scale


@pytest.mark.parametrize("name", list(_residual_zoo()))
def test_residual_blocks_fuse_and_match_the_module_and_a_per_point_loop(name):
    from asymvalley.probe.fused import _Residual

    m, chain, x = _compiled(name, 96)
    assert chain is not None and chain.has_residual
    assert sum(isinstance(s, _Residual) for s in chain.steps) >= 2
    with torch.no_grad():
        ref = m(x)
        got = chain.bind(dict(m.named_parameters()), dict(m.named_buffers()))(x)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    data = {"train": (x[:64], torch.arange(64) % ref.shape[1]), "test": (x[64:], torch.arange(32) % ref.shape[1])}
    u = probe.make_direction("filter", m, seed=1)
    alphas = [-0.5, 0.0, 0.3, 1.0]
    res = probe.curve(m, data, u, alphas, batch_size=40)
    assert res["kernels"].startswith("fused")
    for i, a in enumerate(alphas):  # the plain per-point loop: weights w + a u in a copy, the module's own forward
        import copy

        mp = copy.deepcopy(m)
        with torch.no_grad():
            for n, p in mp.named_parameters():
                p.add_(u.tensors[n], alpha=a)
            for s, (xs, ys) in data.items():
                assert res["splits"][s]["loss"][i] == pytest.approx(F.cross_entropy(mp(xs), ys).item(), rel=1e-5)


def test_residual_chains_run_slopes_fused_and_leave_bn_reestimation_to_the_other_kernels():
    torch.manual_seed(0)
    x = torch.randn(80, 3, 8, 8)
    m = _settle_bn(models.create("resnet20", input_shape=(3, 8, 8), num_classes=10), x)
    data = {"train": (x[:60], torch.arange(60) % 10), "test": (x[60:], torch.arange(20) % 10)}
    u = probe.make_direction("filter", m, seed=1)
    alphas = [-0.5, 0.0, 0.5]
    got = probe.curve(m, data, u, alphas, bn="recalibrate")
    ref = probe.curve(m, data, u, alphas, bn="recalibrate", fast=False)
    assert not got["kernels"].startswith("fused") and ref["kernels"] == "generic"
    for s in data:
        assert got["splits"][s]["loss"] == pytest.approx(ref["splits"][s]["loss"], rel=1e-5)
    res = probe.curve(m, data, u, alphas, slopes=True)
    assert res["kernels"] == "fused-jvp"

    class Splits:  # the data as `_fp64_slopes` reads it
        def split(self, s):
            return data[s]

        def prepare(self, x):
            return x

    ref64 = _fp64_slopes(m, Splits(), u.tensors, alphas)
    got64 = torch.tensor([[res["splits"][s]["slope"][i] for s in data] for i in range(len(alphas))], dtype=torch.float64)
    assert float((got64 - ref64).abs().max()) <= 1e-5 * float(ref64.abs().max())


def test_a_residual_sum_that_is_not_a_block_keeps_the_generic_path():
    class TwoHeads(nn.Module):  # the sum of two Linear heads: not a convolutional residual block
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 3), nn.Linear(6, 3)

        def forward(self, x):
            return self.a(x) + self.b(x)

    assert compile_chain(TwoHeads(), (6,)) is None


@pytest.mark.parametrize("layer, bn", [
    (nn.Conv1d(3, 4, 3, bias=False), nn.BatchNorm1d(4)),
    (nn.Linear(5, 4), nn.BatchNorm1d(4, affine=False)),
    (nn.Linear(5, 4, bias=False), nn.BatchNorm1d(4, affine=False)),
    (nn.Linear(5, 4), None),
])
def test_the_folded_layers_tangent_in_closed_form_equals_torch_func_jvp(layer, bn):
    """``dW'``, ``db'`` of the BN-folded weights (running statistics fixed) = forward-mode AD of the folding."""
    from asymvalley.probe.fused_dual import _fold_dual
    from asymvalley.probe.fused_layers import _fold
    from asymvalley.probe.fused_steps import _Layer

    g = torch.Generator().manual_seed(0)
    step = _Layer("conv1d" if isinstance(layer, nn.Conv1d) else "linear", "l.", layer, "bn." if bn else None, bn)
    params = {"l." + n: p.detach() for n, p in layer.named_parameters()}
    buffers = {}
    if bn is not None:
        params.update({"bn." + n: torch.randn(p.shape, generator=g) for n, p in bn.named_parameters()})
        buffers = {"bn.running_mean": torch.randn(4, generator=g), "bn.running_var": torch.rand(4, generator=g) + 0.1}
    tangents = {n: torch.randn(t.shape, generator=g) for n, t in params.items()}
    primal, tangent = _fold_dual(step, params, buffers, tangents)
    ref_primal, ref_tangent = torch.func.jvp(lambda p: _fold(step, p, buffers), (params,), (tangents,))
    for got, ref in zip(primal + tangent, ref_primal + ref_tangent):
        assert (got is None) == (ref is None)
        if ref is not None:
            assert torch.allclose(got, ref, rtol=1e-6, atol=1e-7)
