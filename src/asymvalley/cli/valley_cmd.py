"""``asymvalley valley RUN_OR_CHECKPOINT --out DIR``: where the model sits, which way is flat, and whether a
measured move towards the flat side helps on held-out data (DIR/valley.json, DIR/valley.html).

Everything is validated before any work: a bad family, K, target, validation file or --out ends as one
``error:`` line, exit status 2, nothing written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError


def run_valley(target: str, out: Path, families: str, k: int, seed: int, checkpoint: str, validation: Optional[str],
               bn: str, points: int, radius: Optional[float], progress: bool = True) -> dict:
    """The body of ``asymvalley valley`` (also callable from tests)."""
    from ..io import check_writable, refuse_clobber
    from ..probe.bn import parse_bn
    from ..valley import load_target, valley, write_valley
    from ..valley.certify import check_families

    fams = check_families(families)
    if k < 1:
        raise UsageError(f"--k must be at least 1 direction per family, got {k}; e.g. --k 4")
    parse_bn(bn)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; choose a directory")
    refuse_clobber(out, "--out", inputs=[target, validation])
    check_writable(out, "--out", directory=True)
    t = load_target(target, checkpoint=checkpoint, validation=validation)
    doc = valley(t["model"], t["data"], families=fams, k=k, seed=seed, bn=bn, points=points, radius=radius,
                 progress=progress, validation_source=t["source"], info=t["info"])
    write_valley(doc, out)
    return doc


def register(app: typer.Typer) -> None:
    from ..valley import DEFAULT_BN, DEFAULT_FAMILIES, DEFAULT_K, DEFAULT_POINTS, FAMILIES

    @app.command("valley")
    def valley_command(
        target: str = typer.Argument(..., metavar="RUN_OR_CHECKPOINT", help="run directory (from `asymvalley train`) or a checkpoint .pt"),
        out: Path = typer.Option(..., "--out", help="directory for valley.json, valley.html and figures/"),
        families: str = typer.Option(",".join(DEFAULT_FAMILIES), "--families", help=f"comma-separated, from {', '.join(FAMILIES)}"),
        k: int = typer.Option(DEFAULT_K, "--k", help="directions searched per family"),
        seed: int = typer.Option(0, "--seed", help="seed of the directions and of the validation halves"),
        checkpoint: str = typer.Option("sgd", "--checkpoint", help="in a run directory: sgd | swa | sgd_after_swa | epoch_NNN"),
        validation: Optional[str] = typer.Option(None, "--validation", help="held-out split for a run without --val-fraction: "
                                                 "a torch.save file of {'x': tensor, 'y': tensor}, never trained on"),
        bn: str = typer.Option(DEFAULT_BN, "--bn", help="BN policy at every point: recalibrate:N | recalibrate | eval"),
        points: int = typer.Option(DEFAULT_POINTS, "--points", help="points per direction (>= 7)"),
        radius: Optional[float] = typer.Option(None, "--radius", help="probe half-range (default: the ladder rule per family)"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ) -> None:
        """Where a model sits in its valley: certified directions, shift, and a move only if it helps on held-out data.

        Certify asymmetric directions on train, measure the train->validation shift, and recommend a move towards
        the flat side only if it beats a pre-stated margin on held-out data (test read last)."""
        doc = run_valley(target, out, families, k, seed, checkpoint, validation, bn, points, radius, progress=not quiet)
        n_cert = sum(r["certified"] for r in doc["directions"])
        typer.echo(f"wrote {out}/valley.json and valley.html: {n_cert} of {len(doc['directions'])} directions certified "
                   f"(c > {doc['settings']['c_min']:g}); validation: {doc['validation']['source']}; {doc['elapsed_s']:.1f} s")
        mv = doc["move"]
        if mv is None:
            typer.echo(f"no move recommended: {doc['reason']}")
        else:
            test = mv.get("test") or {}
            typer.echo(f"recommended move: {mv['kind']} along {', '.join(mv['direction_ids'])}; validation half B loss "
                       f"{mv['val_confirm']['unmoved']:.4f} -> {mv['val_confirm']['moved']:.4f} (margin {mv['margin']:.4f})"
                       + (f"; test loss {test['unmoved']:.4f} -> {test['moved']:.4f}" if test else ""))
