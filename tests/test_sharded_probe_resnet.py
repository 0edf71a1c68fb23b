"""Issue 6: probing a `resnet20` sharded over 2 torchrun ranks (gloo, 127.0.0.1) is bit-identical to one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from asymvalley import models
from asymvalley.checkpoint import save_checkpoint


@pytest.mark.slow
def test_resnet20_sharded_probe_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    net = models.create("resnet20", input_shape=(3, 32, 32), num_classes=10)
    ck = tmp_path / "resnet20.pt"
    save_checkpoint(ck, "resnet20", {"input_shape": [3, 32, 32], "num_classes": 10}, "synthetic-cifar", net.state_dict())
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    args = [str(ck), "--direction", "filter", "--points", "3", "--range", "-0.5", "0.5", "--batch-size", "128"]
    one = subprocess.run([sys.executable, "-m", "asymvalley", "probe", *args, "--out", str(tmp_path / "one.json")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "-m", "asymvalley", "probe", *args, "--out", str(tmp_path / "two.json")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "two.json").read_text())
    assert a["splits"] == b["splits"]  # every float equal, bit for bit
    assert len(a["splits"]["train"]["loss"]) == 3 and a["splits"]["test"]["accuracy"][1] >= 0.0
