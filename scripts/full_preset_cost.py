"""Estimate what ``reproduce --preset full`` costs on this machine without running its probe points.

Part 1 (``count``): runs the full preset for real (training, directions, Hessians, analysis) with the probe
engine's point evaluation replaced by an instant synthetic valley, and counts the points each claim asks for
by (model, split sizes, BN policy, slopes); prints each claim's wall time without its points.
Part 2 (``cost``): times real 41-point curves of trained full-preset models (from part 1's run directory) per
BN policy and split set, in ms per point.  The estimate is part 1's time plus sum(points x ms per point).

Usage: python scripts/full_preset_cost.py count OUT_DIR COUNTS.json
       python scripts/full_preset_cost.py cost OUT_DIR COSTS.json
It is a measurement aid, not part of the product: the counting pass monkeypatches the engine.
"""

import collections
import glob
import json
import sys
import time


def count(out: str, dest: str) -> None:
    from asymvalley.experiments import reproduce as rep
    from asymvalley.probe import engine

    counts, current, seen = collections.Counter(), ["?"], collections.defaultdict(set)

    def instant_points(kernel, todo, coords, req, chunk_points, st, curve_id, progress, amp_dtype):
        inp = kernel.inputs
        sizes = tuple(int(s.x.shape[0]) for s in req.splits)
        new = [i for i in todo if curve_id is None or i not in seen[curve_id]]  # a stored curve is not re-evaluated
        if curve_id is not None:
            seen[curve_id].update(todo)
        counts[(current[0], type(inp.model).__name__, sizes, req.policy.name, bool(inp.slopes))] += len(new)
        pts = {}
        for i in todo:  # an asymmetric valley along the first coordinate (c = 9), so certificates exist
            a = float(coords[i][0])
            f = (a * a if a > 0 else 9 * a * a) + sum(float(c) ** 2 for c in coords[i][1:]) + 0.01
            g = 2 * a if a > 0 else 18 * a
            pts[i] = {s: (f * (1.1 if k else 1.0), 0.9, g if inp.slopes else None) for k, s in enumerate(req.split_names)}
        return pts, None

    engine._run_chunks = instant_points
    get = rep.EXPERIMENTS.get

    def timed_experiment(cid):
        cls = get(cid)

        class Timed(cls):
            def run(self, ctx, cfg):
                current[0], t = cid, time.time()
                try:
                    return super().run(ctx, cfg)
                finally:
                    print("claim", cid, "seconds without points", round(time.time() - t, 1), flush=True)
        return Timed

    rep.EXPERIMENTS.get = timed_experiment
    t0 = time.time()
    try:
        rep.run_reproduction("full", out, seed=100, progress=False, log=lambda s: None)
    finally:
        print("elapsed", round(time.time() - t0, 1))
        with open(dest, "w") as fh:
            json.dump([[list(k), v] for k, v in counts.items()], fh, indent=0)


def cost(out: str, dest: str) -> None:
    from asymvalley import data, probe
    from asymvalley.checkpoint import build_model, read_checkpoint

    res = {}
    for ds, models in (("mnist1d", ("cnn1d_bn", "cnn1d", "mlp")), ("digits", ("cnn2d_bn", "cnn2d", "mlp"))):
        d = data.load(ds)
        for name in models:
            path = sorted(glob.glob(f"{out}/runs/{name}-{ds}-s100-*/checkpoints/sgd.pt"))[0]
            model = build_model(read_checkpoint(path), path).eval()
            u, alphas = probe.make_direction("gaussian", model, seed=0), probe.linspace(-1, 1, 41)
            for bn in (("eval", "recalibrate", "recalibrate:500") if "bn" in name else ("eval",)):
                for splits in (["train", "test"], ["train"]):
                    probe.curve(model, d, u, alphas[:3], splits=splits, bn=bn, progress=False)  # warm-up
                    t = time.perf_counter()
                    probe.curve(model, d, u, alphas, splits=splits, bn=bn, progress=False)
                    res[f"{ds}/{name}/{bn}/{'+'.join(splits)}"] = ms = 1000 * (time.perf_counter() - t) / len(alphas)
                    print(ds, name, bn, splits, f"{ms:.2f} ms/point", flush=True)
    with open(dest, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    {"count": count, "cost": cost}[sys.argv[1]](sys.argv[2], sys.argv[3])
