"""`valley` acceptance on synthetic models with a known valley and a known train -> validation shift, the roles
of the data (validation disjoint, test read last), and bad input."""

from __future__ import annotations

import json

import pytest
import torch

import asymvalley as av
from asymvalley import probe
from asymvalley.errors import UsageError

from valley_models import synthetic_valley

SHIFT = 0.3


def _hessian_u(model, loss, data):
    x, y = data["train"]
    return probe.make_direction("hessian", model, seed=0, x=x, y=y, component=0, loss_fn=loss).tensors["w"]


def test_asymmetric_valley_flat_side_shift_and_a_move_that_helps():
    model, loss, data = synthetic_valley(c=5.0, shift=SHIFT)
    before = {n: t.clone() for n, t in model.state_dict().items()}
    doc = av.valley(model, data, families=("hessian",), k=1, loss_fn=loss)
    d = doc["directions"][0]
    assert d["certified"] and d["c"] > 3
    # the flat side is +a (the valley's slope there is p, on -a it is c p): orient the found direction
    along_a = float(_hessian_u(model, loss, data) @ model.a)
    assert (d["flat_side"] == "+") == (along_a > 0)
    assert d["delta_star"] == pytest.approx(SHIFT, rel=0.10)  # towards the flat side, within 10 %
    mv = doc["move"]
    assert mv is not None and doc["reason"] is None
    gain_b = mv["val_confirm"]["unmoved"] - mv["val_confirm"]["moved"]
    assert gain_b > mv["margin"] > 0
    assert mv["test"]["moved"] < mv["test"]["unmoved"]
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items())  # the model is not displaced
    assert doc["validation"]["n_select"] + doc["validation"]["n_confirm"] == 400
    json.dumps(doc, allow_nan=False)  # plain JSON


def test_symmetric_valley_certifies_nothing_and_recommends_no_move():
    model, loss, data = synthetic_valley(c=1.0, shift=SHIFT)
    doc = av.valley(model, data, families=("hessian", "gaussian"), k=1, loss_fn=loss)
    assert not any(d["certified"] for d in doc["directions"])
    assert doc["move"] is None and "no direction is certified" in doc["reason"]


def test_without_validation_it_diagnoses_but_recommends_nothing():
    model, loss, data = synthetic_valley(c=5.0, shift=SHIFT)
    doc = av.valley(model, {"train": data["train"], "test": data["test"]}, families="hessian", k=1, loss_fn=loss)
    assert doc["directions"][0]["certified"] and doc["directions"][0]["delta_star"] is None
    assert doc["move"] is None and "no validation split" in doc["reason"]
    assert doc["validation"]["source"] == "none"


def test_test_split_is_read_only_after_the_move_is_chosen(monkeypatch):
    calls = []
    for name in ("curve", "points"):
        real = getattr(probe, name)

        def spy(*a, _real=real, **kw):
            calls.append(tuple(kw["splits"]))
            return _real(*a, **kw)

        monkeypatch.setattr(probe, name, spy)
    model, loss, data = synthetic_valley(c=5.0, shift=SHIFT)
    doc = av.valley(model, data, families="hessian", k=1, loss_fn=loss)
    assert doc["move"] is not None
    with_test = [i for i, s in enumerate(calls) if "test" in s]
    assert with_test == [len(calls) - 1] and calls[-1] == ("test",)
    assert any("val_b" in s for s in calls[:-1]) and "val_b" not in calls[-1]


def test_validation_halves_are_disjoint_and_a_dataloader_works():
    from asymvalley.valley.roles import DataRoles

    model, loss, data = synthetic_valley(c=5.0, shift=SHIFT)
    roles = DataRoles.build(data, seed=0)
    a, b = roles.splits["val_a"][0], roles.splits["val_b"][0]
    assert len(set(a.view(-1).tolist()) & set(b.view(-1).tolist())) == 0
    assert len(a) + len(b) == 400
    ds = torch.utils.data.TensorDataset(*data["val"])
    loader_roles = DataRoles.build({"train": data["train"]}, torch.utils.data.DataLoader(ds, batch_size=64), seed=0)
    la = torch.cat([x for x, _ in loader_roles.splits["val_a"]])
    assert torch.equal(la.sort(0).values, a.sort(0).values)  # the same halves from a DataLoader


@pytest.mark.parametrize("kw, message", [
    ({"families": "sideways"}, "unknown direction family 'sideways'"),
    ({"k": 0}, "K must be a positive number"),
    ({"validation": "overlap"}, "shares 400 of its 400 samples with the training data"),
    ({"data": "wrong"}, "the model cannot run on the training data"),
])
def test_bad_input_is_one_line(kw, message):
    model, loss, data = synthetic_valley(c=5.0, shift=SHIFT)
    kw = dict(kw)
    if kw.get("validation") == "overlap":
        data = {"train": data["train"]}
        kw["validation"] = data["train"]
    if kw.pop("data", None) == "wrong":
        data = {"train": (torch.zeros(8), torch.zeros(8))}
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        av.valley(model, data, loss_fn=loss, **{"families": "hessian", "k": 1, **kw})
