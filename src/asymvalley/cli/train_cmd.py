"""``asymvalley train``: SGD + SWA + SGD-after-SWA into a run directory (design §7)."""

from __future__ import annotations

import time
from typing import Optional

import typer

from ..train.config import TrainConfig

_D = TrainConfig()


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_command(
        out: str = typer.Option(..., "--out", help="run directory (RUN/run.sqlite, RUN/checkpoints/*.pt, RUN/metrics.json)"),
        model: str = typer.Option(_D.model, help="registered model (see `asymvalley models`)"),
        dataset: str = typer.Option(_D.dataset, help="registered data set: mnist1d, digits, synthetic, cifar10, ..."),
        epochs: int = typer.Option(_D.epochs, help="epochs of the SGD/SWA budget"),
        lr: float = typer.Option(_D.lr, help="initial learning rate"),
        swa_start: int = typer.Option(_D.swa_start, help="first epoch (0-based) averaged into SWA"),
        swa_lr: float = typer.Option(_D.swa_lr, help="constant learning rate from swa_start on"),
        sgd_after_swa_epochs: int = typer.Option(_D.sgd_after_swa_epochs, help="epochs of SGD from the SWA solution (the paper's SGD point)"),
        sgd_after_swa_lr: float = typer.Option(_D.sgd_after_swa_lr, help="its constant learning rate"),
        batch_size: int = typer.Option(_D.batch_size),
        weight_decay: float = typer.Option(_D.weight_decay),
        momentum: float = typer.Option(_D.momentum),
        seed: int = typer.Option(_D.seed),
        val_fraction: float = typer.Option(_D.val_fraction, "--val-fraction", help="hold out this fraction (0, 0.5] of the training "
                                           "split as validation that training never sees (seeded by --seed; used by `asymvalley valley`)"),
        device: str = typer.Option(_D.device, help="cpu or cuda"),
        recipe: Optional[str] = typer.Option(None, help="a paper recipe (e.g. preresnet164-cifar100); sets model, data set and budget"),
        data_dir: Optional[str] = typer.Option(None, help="directory holding image data sets (CIFAR, SVHN, STL-10)"),
        resume: bool = typer.Option(False, "--resume", help="continue a killed run in --out from its last finished epoch"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ) -> None:
        """Train SGD and SWA solutions (Izmailov et al. schedule) and the SGD-after-SWA point.

        Default budget on MNIST-1D: 30 epochs (SWA from epoch 20) + 5 epochs of SGD after SWA.
        """
        from ..train import run_training

        settings = dict(model=model, dataset=dataset, epochs=epochs, lr=lr, swa_start=swa_start, swa_lr=swa_lr,
                        sgd_after_swa_epochs=sgd_after_swa_epochs, sgd_after_swa_lr=sgd_after_swa_lr, batch_size=batch_size,
                        weight_decay=weight_decay, momentum=momentum, seed=seed, device=device,
                        val_fraction=val_fraction)
        if recipe is not None:
            from ..train.recipes import get_recipe

            settings.update(get_recipe(recipe).train_kwargs())
        if data_dir is not None:
            settings["dataset_kwargs"] = {"data_dir": data_dir}
        cfg = TrainConfig(**settings)
        from ..io import refuse_clobber

        # here, not in run_training: reproduce trains into its own DIR/runs/; --out is never an input nor another run's files
        refuse_clobber(out, "--out", inputs=[cfg.init_checkpoint])
        t0 = time.perf_counter()
        metrics = run_training(cfg, out, resume=resume, progress=not quiet, log=typer.echo)
        from ..dist import is_main

        if not is_main():  # under torchrun only rank 0 reports
            return
        typer.echo(f"trained {cfg.model} on {cfg.dataset} in {time.perf_counter() - t0:.1f} s -> {out}")
        for name, m in metrics["final"].items():
            typer.echo(f"  {name:<14} train acc {100 * m['train_acc']:6.2f}%  test acc {100 * m['test_acc']:6.2f}%  "
                       f"train loss {m['train_loss']:.4f}  test loss {m['test_loss']:.4f}")
