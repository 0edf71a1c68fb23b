"""The batch protocol (issue 14): users' own models and data, checked against a plain per-point loop.

* a ``transformers`` model built from a config (no download) on synthetic tokens with an attention
  mask, dict batches from a DataLoader, probed end to end: curve with exact slopes, certificate,
  shift gap;
* a regression MLP with mean-squared error, resident, streamed and with a user batch function;
* BN re-estimation on a loader; a loader larger than the memory budget with flat peak RSS;
* bad input: one line each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, jvp
from torch.utils.data import DataLoader, Dataset, TensorDataset

import asymvalley as av
from asymvalley.errors import UsageError

REL = 1e-5


def _close(got, want, rel=REL):
    got, want = torch.tensor(got, dtype=torch.float64), torch.tensor(want, dtype=torch.float64)
    assert torch.allclose(got, want, rtol=rel, atol=rel * float(want.abs().max())), (got, want)


def _plain_loop(model, loader_batches, u, alphas, loss_of):
    """Per point: weights w + a u into the model by `functional_call`, then every batch; split means."""
    center = {n: p.detach() for n, p in model.named_parameters()}
    losses, accs = [], []
    with torch.no_grad():
        for a in alphas:
            params = {n: center[n] + a * u.tensors[n] for n in center}
            tot, hits, n = 0.0, 0.0, 0
            for batch in loader_batches:
                ls, c, k = loss_of(lambda **kw: functional_call(model, params, (), kw), batch)
                tot, hits, n = tot + float(ls), hits + float(c), n + k
            losses.append(tot / n)
            accs.append(hits / n)
    return losses, accs


# --------------------------------------------------------------------------- transformers
class Tokens(Dataset):
    """Synthetic sentences: random token ids, random lengths padded with 0, attention mask, a label."""

    def __init__(self, n, seed, length=12, vocab=50):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, vocab, (n, length), generator=g)
        lengths = torch.randint(4, length + 1, (n,), generator=g)
        self.mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        self.ids = self.ids * self.mask
        self.labels = (self.ids[:, 0] % 3).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


@pytest.fixture(scope="module")
def bert():
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=16, num_labels=3, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                     attn_implementation="eager")  # CPU scaled-dot-product attention has no forward-mode derivative
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    model.train()  # the engine evaluates in eval mode and restores the flag
    return model


def test_transformers_model_end_to_end_agrees_with_a_plain_loop(bert):
    data = {"train": DataLoader(Tokens(96, 1), batch_size=32), "test": DataLoader(Tokens(64, 2), batch_size=32)}
    u = av.probe.make_direction("filter", bert, seed=0)
    alphas = av.probe.linspace(-1, 1, 9)
    res = av.probe.curve(bert, data, u, alphas, slopes=True)
    assert res["kernels"] == "generic" and bert.training  # flag restored

    def loss_of(model_call, b):
        logits = model_call(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        return F.cross_entropy(logits, b["labels"], reduction="sum"), (logits.argmax(1) == b["labels"]).sum(), len(b["labels"])

    bert.eval()
    try:
        for split in ("train", "test"):
            loss, acc = _plain_loop(bert, list(data[split]), u, alphas, loss_of)
            _close(res["splits"][split]["loss"], loss)
            _close(res["splits"][split]["accuracy"], acc)
        # the exact slope at one point, by a plain jvp over the whole split
        train = list(data["train"])
        center = {n: p.detach() for n, p in bert.named_parameters()}
        a = alphas[2]

        def mean_loss(params):
            tot = sum(F.cross_entropy(functional_call(bert, params, (), {"input_ids": b["input_ids"],
                      "attention_mask": b["attention_mask"]}).logits, b["labels"], reduction="sum") for b in train)
            return tot / 96

        _, slope = jvp(mean_loss, ({n: center[n] + a * u.tensors[n] for n in center},), ({n: u.tensors[n] for n in center},))
        _close([res["splits"]["train"]["slope"][2]], [float(slope)])
    finally:
        bert.train()
    # the paper's analyses on the curve
    cert = av.analysis.best_certificate(res["alphas"], res["splits"]["train"]["loss"], res["splits"]["train"]["slope"], c_min=1.0)
    best = cert if cert is not None else av.analysis.certificate(res["alphas"], res["splits"]["train"]["loss"],
                                                                res["splits"]["train"]["slope"], r_inner=0.25, r_outer=1.0)
    assert best.flat_side in "+-" and best.n_flat >= 1
    gap = av.analysis.shift_gap(res["alphas"], res["splits"]["train"]["loss"], res["alphas"], res["splits"]["test"]["loss"])
    assert gap.xi_star <= gap.xi_zero


def test_slopes_through_an_operation_without_forward_ad_is_one_line(bert):
    from transformers import BertForSequenceClassification

    sdpa = BertForSequenceClassification(bert.config.__class__(**{**bert.config.to_dict(), "attn_implementation": "sdpa"}))
    u = av.probe.make_direction("gaussian", sdpa, seed=0)
    with pytest.raises(UsageError, match=r"^slopes need forward-mode AD, which this model does not support \(Trying to use "
                                         r"forward AD with .*attn_implementation='eager'\)$"):
        av.probe.curve(sdpa, {"train": [Tokens(8, 0)[:8]]}, u, [-1, 0, 1], splits=["train"], slopes=True)


def test_model_output_without_logits_or_loss_is_one_line():
    class Hidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            return {"hidden_states": self.lin(x)}

    m = Hidden()
    u = av.probe.make_direction("gaussian", m, seed=0)
    with pytest.raises(UsageError) as exc:
        av.probe.curve(m, {"train": (torch.randn(8, 4), torch.zeros(8, dtype=torch.long))}, u, [-1, 0, 1], splits=["train"])
    assert str(exc.value) == ("the model's output (dict with keys hidden_states) has neither 'logits' nor 'loss'; "
                              "return logits, or pass batch_fn=(model, batch) -> (loss_sum, count[, correct])")


def test_loss_only_output_is_a_batch_mean():
    class SelfLoss(nn.Module):  # returns only its loss, as a model given labels would
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 1)

        def forward(self, x, target):
            return {"loss": F.mse_loss(self.lin(x).squeeze(1), target)}

    torch.manual_seed(0)
    m, x, t = SelfLoss(), torch.randn(40, 4), torch.randn(40)
    batches = [{"x": x[i:i + 16], "target": t[i:i + 16]} for i in range(0, 40, 16)]  # 16, 16, 8: weights by size
    u = av.probe.make_direction("gaussian", m, seed=1)
    res = av.probe.points(m, {"train": batches}, [u], [[0.0], [0.5]], splits=["train"])
    with torch.no_grad():
        want = [float(F.mse_loss(functional_call(m, {n: p + a * u.tensors[n] for n, p in m.named_parameters()}, (x,))
                                 if False else (x @ (m.lin.weight + a * u.tensors["lin.weight"]).T
                                                + m.lin.bias + a * u.tensors["lin.bias"]).squeeze(1), t)) for a in (0.0, 0.5)]
    _close(res["splits"]["train"]["loss"], want)
    assert all(a != a for a in res["splits"]["train"]["accuracy"])  # no logits: accuracy is NaN


# --------------------------------------------------------------------------- regression
def _regression():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1))
    x = torch.randn(300, 5)
    y = (x[:, :1] * 2 - x[:, 1:2]).clone() + 0.1 * torch.randn(300, 1)
    return model, x, y


@pytest.mark.parametrize("how", ["tensors", "loader", "streamed", "batch_fn"])
def test_regression_mlp_with_mse_agrees_with_a_plain_loop(how):
    model, x, y = _regression()
    u = av.probe.make_direction("filter", model, seed=0)
    alphas = av.probe.linspace(-2, 2, 7)
    kw: dict = {"loss_fn": F.mse_loss}
    data = {"train": DataLoader(TensorDataset(x, y), batch_size=64)}
    if how == "tensors":
        data = {"train": (x, y)}
    elif how == "streamed":
        kw["memory_budget"] = 0
    elif how == "batch_fn":
        kw = {"batch_fn": lambda m, b: (((m(b[0]) - b[1]) ** 2).sum(), len(b[1]))}
    res = av.probe.curve(model, data, u, alphas, splits=["train"], slopes=(how == "streamed"), **kw)
    assert res["kernels"] == ("generic" if how in ("streamed", "batch_fn") else res["kernels"])

    def loss_of(call, b):
        return F.mse_loss(call(input=b[0]), b[1], reduction="sum"), float("nan"), len(b[1])

    loss, _ = _plain_loop(model, [(x, y)], u, alphas, loss_of)
    _close(res["splits"]["train"]["loss"], loss)
    assert all(a != a for a in res["splits"]["train"]["accuracy"])  # regression: no accuracy


def test_bn_recalibration_on_a_streamed_loader_matches_tensors():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(256, 6), torch.randint(0, 3, (256,))
    u = av.probe.make_direction("gaussian", model, seed=0)
    coords = [[-1.0], [0.0], [1.0]]
    ref = av.probe.points(model, {"train": (x, y)}, [u], coords, splits=["train"], bn="recalibrate", bn_batch_size=64, fast=False)
    got = av.probe.points(model, {"train": DataLoader(TensorDataset(x, y), batch_size=64)}, [u], coords, splits=["train"],
                          bn="recalibrate", memory_budget=0)
    _close(got["splits"]["train"]["loss"], ref["splits"]["train"]["loss"])
    plain = av.probe.points(model, {"train": (x, y)}, [u], coords, splits=["train"], bn="eval")
    assert abs(plain["splits"]["train"]["loss"][0] - ref["splits"]["train"]["loss"][0]) > 1e-3  # re-estimation did something


# --------------------------------------------------------------------------- memory
RSS_SCRIPT = textwrap.dedent("""
    import json, sys, torch, torch.nn as nn
    from torch.utils.data import DataLoader, Dataset
    import asymvalley as av

    class Lazy(Dataset):  # N x 8192 float32 (N = 2048: 64 MiB), generated on access, never held
        def __len__(self): return int(sys.argv[2])
        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return torch.randn(8192, generator=g), i % 2

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8192, 8), nn.ReLU(), nn.Linear(8, 2))
    u = av.probe.make_direction("gaussian", model, seed=0)
    loader = DataLoader(Lazy(), batch_size=128)
    av.probe.points(model, {"train": [next(iter(loader))]}, [u], [[0.0]], splits=["train"])  # warm-up: allocator, kernels

    def kib(field):  # VmRSS: resident now; VmHWM: peak since the last reset
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field + ":"))

    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the current RSS
        fh.write("5")
    before = kib("VmRSS")
    res = av.probe.points(model, {"train": loader}, [u], [[-1.0], [0.0], [1.0]], splits=["train"],
                          memory_budget=int(sys.argv[1]))
    print(json.dumps({"growth_mib": (kib("VmHWM") - before) / 1024, "kernels": res["kernels"],
                      "loss": res["splits"]["train"]["loss"]}))
""")


def _rss_run(budget, n):
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(budget), str(n)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_loader_larger_than_the_budget_is_streamed_with_flat_peak_rss():
    streamed = _rss_run(4 << 20, 2048)  # a 4 MiB budget for 64 MiB of data
    half = _rss_run(4 << 20, 1024)      # half the data: the same peak (flat in the data's size)
    resident = _rss_run(1 << 30, 2048)  # the same data materialised: the measurement does see 64 MiB
    assert abs(streamed["growth_mib"] - half["growth_mib"]) < 8, (streamed, half)  # not flat: >= 32 MiB apart
    assert streamed["growth_mib"] < 24, streamed  # budget + a few 4 MiB batches in flight
    assert resident["growth_mib"] > 56, resident
    _close(streamed["loss"], resident["loss"])


# --------------------------------------------------------------------------- bad input
def _tiny():
    torch.manual_seed(0)
    m = nn.Linear(4, 3)
    return m, av.probe.make_direction("gaussian", m, seed=0), TensorDataset(torch.randn(20, 4), torch.randint(0, 3, (20,)))


def test_shuffling_loader_is_refused():
    m, u, ds = _tiny()
    with pytest.raises(UsageError) as exc:
        av.probe.curve(m, {"train": DataLoader(ds, batch_size=8, shuffle=True)}, u, [-1, 0, 1], splits=["train"])
    assert str(exc.value) == ("split 'train': the DataLoader shuffles (RandomSampler); every point must see the same "
                              "samples, so build it with shuffle=False")


def test_empty_loader_is_refused():
    m, u, ds = _tiny()
    with pytest.raises(UsageError) as exc:
        av.probe.curve(m, {"train": DataLoader(torch.utils.data.Subset(ds, []), batch_size=8)}, u, [-1, 0, 1], splits=["train"])
    assert str(exc.value) == "split 'train' yields no batches; give it at least one sample"


@pytest.mark.parametrize("fn, message", [
    (lambda m, b: (F.cross_entropy(m(b[0]), b[1], reduction="none"), len(b[1])),
     "split 'train': batch_fn's loss_sum must be a scalar floating tensor (the batch's summed loss), not a tensor of shape (8,); "
     "sum the per-sample losses"),
    (lambda m, b: F.cross_entropy(m(b[0]), b[1]),
     "split 'train': batch_fn must return (loss_sum, count) or (loss_sum, count, correct), not Tensor"),
    (lambda m, b: (F.cross_entropy(m(b[0]), b[1]), 0),
     "split 'train': batch_fn's count must be a positive integer (samples in the batch), not 0"),
])
def test_bad_batch_function_output_is_one_line(fn, message, tmp_path):
    m, u, ds = _tiny()
    with pytest.raises(UsageError) as exc:
        av.probe.curve(m, {"train": DataLoader(ds, batch_size=8)}, u, [-1, 0, 1], splits=["train"], batch_fn=fn, store=tmp_path)
    assert str(exc.value) == message
    assert not (tmp_path / "run.sqlite").exists()  # checked before the store is opened


def test_loader_that_changes_between_passes_fails():
    m, u, ds = _tiny()

    class Shrinking:
        def __init__(self):
            self.n = 20

        def __iter__(self):
            self.n -= 4
            return iter(DataLoader(torch.utils.data.Subset(ds, range(self.n)), batch_size=8))

    with pytest.raises(UsageError, match=r"samples per split at one point and .* at another; a loader must yield the same"):
        av.probe.curve(m, {"train": Shrinking()}, u, [-1, 0, 1], splits=["train"], memory_budget=0)


# --------------------------------------------------------------------------- the CLI on a user's SPEC.py
SPEC_HEAD = """
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
ds = TensorDataset(torch.randn(40, 4), torch.randint(0, 3, (40,)))
"""


def test_cli_probes_a_users_spec_file(cli, tmp_path):
    spec = tmp_path / "spec.py"
    spec.write_text(SPEC_HEAD + "data = {'train': DataLoader(ds, batch_size=16), 'val': [(t[0][:8], t[1][:8]) for t in [ds[:]]]}\n")
    out = tmp_path / "c.json"
    code, stdout, err = cli("probe", spec, "--direction", "filter", "--splits", "train,val", "--points", "5", "--slopes", "--out", out)
    assert code == 0, err
    res = json.loads(out.read_text())
    assert res["spec"] == str(spec) and set(res["splits"]) == {"train", "val"} and len(res["splits"]["val"]["slope"]) == 5
    code, stdout, _ = cli("analyze", "asymmetry", out, "--out", tmp_path / "a.json")
    assert code == 0 and stdout.count("\n") == 1


@pytest.mark.parametrize("body, message", [
    ("data = {'train': DataLoader(ds, batch_size=8, shuffle=True)}",
     "error: split 'train': the DataLoader shuffles (RandomSampler); every point must see the same samples, so build it with shuffle=False\n"),
    ("data = {'train': DataLoader(torch.utils.data.Subset(ds, []), batch_size=8)}",
     "error: split 'train' yields no batches; give it at least one sample\n"),
    ("data = {'train': DataLoader(ds, batch_size=8)}\nbatch_fn = lambda m, b: (F.cross_entropy(m(b[0]), b[1], reduction='none'), 8)",
     "error: split 'train': batch_fn's loss_sum must be a scalar floating tensor (the batch's summed loss), not a tensor of "
     "shape (8,); sum the per-sample losses\n"),
    ("class M(nn.Module):\n    def forward(self, x):\n        return {'features': x}\nmodel = M()\nmodel.w = nn.Parameter(torch.ones(1))\n"
     "data = {'train': DataLoader(ds, batch_size=8)}",
     "error: the model's output (dict with keys features) has neither 'logits' nor 'loss'; return logits, or pass "
     "batch_fn=(model, batch) -> (loss_sum, count[, correct])\n"),
    ("data = {'train': DataLoader(ds, batch_size=8)}\nraise ValueError('bad spec')", "error: {spec} raised ValueError (line 8): bad spec; fix the file and rerun\n"),
])
def test_cli_bad_batch_protocol_input_is_one_line_exit_2(cli, tmp_path, body, message):
    spec = tmp_path / "spec.py"
    spec.write_text(SPEC_HEAD + body + "\n")
    out = tmp_path / "c.json"
    code, stdout, err = cli("probe", spec, "--direction", "gaussian", "--splits", "train", "--points", "3", "--out", out)
    assert (code, stdout, err) == (2, "", message.format(spec=spec))
    assert not out.exists()


def test_padded_batches_of_different_lengths_are_kept_as_batches():
    class MeanPool(nn.Module):  # (batch, length, features) -> logits; the length differs per batch
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x.mean(1))

    torch.manual_seed(0)
    m = MeanPool()
    batches = [(torch.randn(4, t, 3), torch.randint(0, 2, (4,))) for t in (5, 7, 9)]
    u = av.probe.make_direction("gaussian", m, seed=0)
    res = av.probe.curve(m, {"train": batches}, u, [-1.0, 0.0, 1.0], splits=["train"])

    def loss_of(call, b):
        logits = call(x=b[0])
        return F.cross_entropy(logits, b[1], reduction="sum"), (logits.argmax(1) == b[1]).sum(), len(b[1])

    loss, acc = _plain_loop(m, batches, u, [-1.0, 0.0, 1.0], loss_of)
    _close(res["splits"]["train"]["loss"], loss)
    _close(res["splits"]["train"]["accuracy"], acc)
