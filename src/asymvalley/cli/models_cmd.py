"""``asymvalley models``: list the registered architectures with parameter counts."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_command(pattern: str = typer.Argument("*", help="glob over model names, e.g. 'resnet*'")) -> None:
        """List registered models, the data set each is sized for, and its parameter count d."""
        from .. import models

        shapes = {"mnist1d": ((1, 40), 10), "digits": ((1, 8, 8), 10), "cifar10": ((3, 32, 32), 10)}
        typer.echo(f"{'model':<16} {'dataset':<10} {'parameters':>12}")
        for name in models.names(pattern):
            ds = models.default_dataset(name)
            shape, classes = shapes.get(ds, ((1, 40), 10))
            net = models.create(name, input_shape=shape, num_classes=classes)
            typer.echo(f"{name:<16} {ds:<10} {models.num_parameters(net):>12,}")
