"""Paper-scale architectures (parameter counts, forward/backward, determinism) and the SWA recipes."""

from __future__ import annotations

import pytest
import torch

from asymvalley import models
from asymvalley.errors import UsageError
from asymvalley.models import num_parameters
from asymvalley.train.recipes import RECIPES, Recipe, get_recipe

PAPER_MODELS = ["resnet20", "resnet56", "resnet110", "resnet164", "preresnet110", "preresnet164",
                "vgg16", "vgg16_bn", "densenet_bc100"]

# published sizes (10 classes): He et al. 2016a/b, Huang et al. 2017
PUBLISHED = {"resnet20": 0.27e6, "resnet56": 0.85e6, "resnet110": 1.73e6, "resnet164": 1.70e6,
             "preresnet164": 1.70e6, "densenet_bc100": 0.77e6}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Deep nets at batch 2 run fastest single-threaded (and do not fight other test processes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(name, num_classes=10, size=32, **kw):
    torch.manual_seed(0)
    return models.create(name, input_shape=(3, size, size), num_classes=num_classes, **kw)


def test_all_registered_with_cifar10_default():
    for name in PAPER_MODELS:
        assert name in models.names()
        assert models.default_dataset(name) == "cifar10"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_publications(name):
    n = num_parameters(build(name))
    assert abs(n - PUBLISHED[name]) / PUBLISHED[name] < 0.02, (name, n)


def test_documented_exact_counts():
    assert num_parameters(build("vgg16")) == 15_245_130
    assert num_parameters(build("vgg16_bn")) == 15_253_578
    assert num_parameters(build("densenet_bc100")) == 769_162
    assert num_parameters(build("preresnet110")) == 1_146_842  # SWA code base: bottleneck, 12 per stage
    assert abs(num_parameters(build("preresnet110", block="basic")) - 1.73e6) / 1.73e6 < 0.02
    # option A shortcuts add no parameters; option B adds the 1x1 projections
    assert num_parameters(build("resnet110", shortcut="B")) > num_parameters(build("resnet110"))


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("name", PAPER_MODELS)
def test_forward_backward_cifar_batch(name, num_classes):
    model = build(name, num_classes).train()
    x = torch.randn(2, 3, 32, 32)
    y = torch.tensor([0, num_classes - 1])
    out = model(x)
    assert out.shape == (2, num_classes)
    torch.nn.functional.cross_entropy(out, y).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.fc.weight.grad.abs().sum() > 0 if hasattr(model, "fc") else True


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_eval_mode_is_deterministic(name):
    model = build(name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)
    assert torch.isfinite(a).all()


@pytest.mark.parametrize("name", ["resnet20", "preresnet110", "vgg16_bn", "densenet_bc100"])
def test_stl_sized_inputs(name):
    model = build(name, size=96).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 96)).shape == (1, 10)


def test_input_shape_is_checked():
    with pytest.raises(UsageError, match="3-channel"):
        models.create("resnet56", input_shape=(1, 40), num_classes=10)
    with pytest.raises(UsageError, match="3-channel"):
        models.create("densenet_bc100", input_shape=(1, 32, 32), num_classes=10)
    with pytest.raises(UsageError, match="at least 32x32"):
        models.create("vgg16", input_shape=(3, 8, 8), num_classes=10)


# ----------------------------------------------------------------------------- recipes


def test_recipes_follow_the_swa_paper():
    assert set(RECIPES) == {f"{m}-{d}" for m in ("preresnet110", "preresnet164", "vgg16") for d in ("cifar10", "cifar100")}
    for r in RECIPES.values():
        assert r.model in models.names() and r.momentum == 0.9 and r.batch_size == 128
        if r.model.startswith("preresnet"):
            assert (r.epochs, r.lr, r.weight_decay, r.swa_epochs, r.swa_start) == (150, 0.1, 3e-4, 225, 126)
            assert r.swa_lr == (0.05 if r.dataset == "cifar100" else 0.01)
        else:
            assert (r.epochs, r.lr, r.weight_decay, r.swa_epochs, r.swa_start, r.swa_lr) == (200, 0.05, 5e-4, 300, 161, 0.01)
    r = get_recipe("preresnet110-cifar100")
    assert r.expected["asym_paper.swa.test_acc"] == 78.94 and r.expected["asym_paper.sgd_after_swa.train_acc"] == 97.52
    r = get_recipe("preresnet164-cifar100")
    assert r.expected["asym_paper.swa.train_acc"] == 97.48 and r.expected["asym_paper.sgd_after_swa.test_acc"] == 76.56


def test_recipe_is_frozen_and_serialisable():
    import dataclasses
    import json

    r = get_recipe("vgg16-cifar10")
    assert isinstance(r, Recipe)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.lr = 1.0
    with pytest.raises(TypeError):
        r.expected["swa_paper.swa.test_acc"] = 0.0
    d = json.loads(json.dumps(r.to_dict()))
    assert d["name"] == "vgg16-cifar10" and d["expected"]["swa_paper.sgd.test_acc"] == 93.25
    assert hash(r) == hash(get_recipe("vgg16-cifar10"))
    kw = r.train_kwargs(seed=3)
    assert kw["epochs"] == 300 and kw["swa_start"] == 161 and kw["seed"] == 3


def test_unknown_recipe_lists_known_names():
    with pytest.raises(UsageError) as err:
        get_recipe("resnet9000-cifar10")
    msg = str(err.value)
    assert "resnet9000-cifar10" in msg and "preresnet164-cifar100" in msg and "vgg16-cifar10" in msg
