"""The README's Python quick start: is a trained solution in an asymmetric valley? (Definitions 1-3)

Run after `asymvalley train --model mlp --out runs/mlp` (the default MNIST-1D budget).
"""

import asymvalley as av

model, meta = av.load_checkpoint("runs/mlp/checkpoints/swa.pt")  # (model in eval mode, its metadata)
data = av.data.load(meta["dataset"])                              # MNIST-1D, as the run was trained on
u = av.probe.make_direction("filter", model, seed=0)              # a filter-normalised random direction
curve = av.probe.curve(model, data, u, av.probe.linspace(-1, 1, 21), slopes=True, progress=True)

train, test = curve["splits"]["train"], curve["splits"]["test"]
cert = av.analysis.best_certificate(curve["alphas"], train["loss"], train["slope"], c_min=2.0)
gap = av.analysis.shift_gap(curve["alphas"], train["loss"], curve["alphas"], test["loss"])
print(f"train loss at w: {train['loss'][10]:.4f}, slope {train['slope'][10]:+.4f} ({curve['kernels']} kernel)")
print("certificate (Def. 1):", "none with c > 2" if cert is None else
      f"c = {cert.c:.2f} on ({cert.r_inner:.2f}, {cert.r_outer:.2f}), p = {cert.p:.3f}, flat side {cert.flat_side}u")
print(f"shift gap (Def. 3): delta* = {gap.delta_star:+.3f}, xi(delta*)/xi(0) = {gap.ratio:.2f}")
