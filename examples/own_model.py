"""Your own model and data: a `transformers` classifier on token batches, and a regression MLP.

Needs `pip install transformers` (built from a config here: nothing is downloaded).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from transformers import BertConfig, BertForSequenceClassification

import asymvalley as av

# 1. A BERT classifier from a config, on synthetic sentences with an attention mask (dict batches).
torch.manual_seed(0)
cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 max_position_embeddings=16, num_labels=3, attn_implementation="eager")  # eager: forward-mode AD for slopes
bert = BertForSequenceClassification(cfg)
ids = torch.randint(1, 50, (160, 12))
mask = (torch.arange(12) < torch.randint(4, 13, (160, 1))).long()
batches = [{"input_ids": ids[i:i + 32] * mask[i:i + 32], "attention_mask": mask[i:i + 32], "labels": ids[i:i + 32, 0] % 3}
           for i in range(0, 160, 32)]
data = {"train": batches[:3], "test": batches[3:]}                 # any iterable of batches per split
u = av.probe.make_direction("filter", bert, seed=0)
curve = av.probe.curve(bert, data, u, av.probe.linspace(-1, 1, 9), slopes=True)
train, test = curve["splits"]["train"], curve["splits"]["test"]
cert = av.analysis.certificate(curve["alphas"], train["loss"], train["slope"], r_inner=0.25, r_outer=1.0)
gap = av.analysis.shift_gap(curve["alphas"], train["loss"], curve["alphas"], test["loss"])
print(f"bert: train loss at w {train['loss'][4]:.4f}, exact slope {train['slope'][4]:+.4f} ({curve['kernels']} kernel)")
print(f"bert: on (0.25, 1): p = {cert.p:.4f}, c = {cert.c:.2f}, valid: {cert.valid} {cert.reason}".rstrip())
print(f"bert: shift gap delta* = {gap.delta_star:+.3f}, xi(delta*) = {gap.xi_star:.4f}, xi(0) = {gap.xi_zero:.4f}")

# 2. A regression MLP with mean-squared error, its data in a DataLoader.
mlp = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1))
x = torch.randn(512, 5)
y = x[:, :1] * 2 - x[:, 1:2] + 0.1 * torch.randn(512, 1)
loader = DataLoader(TensorDataset(x, y), batch_size=128)           # shuffle=False: every point sees the same samples
curve = av.probe.curve(mlp, {"train": loader}, av.probe.make_direction("filter", mlp, seed=0),
                       av.probe.linspace(-1, 1, 5), splits=["train"], loss_fn=F.mse_loss)
print("mlp: MSE along u:", " ".join(f"{v:.3f}" for v in curve["splits"]["train"]["loss"]))
