"""The ``asymvalley`` command line (design §7).

Each sub-command lives in its own module exposing ``register(app)``. Every
user error ends as one line ``error: ...`` on stderr and exit status 2, with
no traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

from ..errors import UsageError

__all__ = ["app", "main", "summary"]


def summary(help_text: str | None) -> str:
    """A command's one-line summary in ``--help`` listings: the first line of its docstring, whole.

    click's default cuts at the first ". " and at 45 characters, so "(Izmailov et al. schedule)" became
    "(Izmailov et al."; the first line is written to stand alone instead.

    >>> summary("Train SGD and SWA solutions (Izmailov et al. schedule).\\n\\nDetails.")
    'Train SGD and SWA solutions (Izmailov et al. schedule).'
    """
    lines = [ln.strip() for ln in (help_text or "").strip().splitlines()]
    return lines[0] if lines else ""


def _set_summaries(cmd) -> None:
    if not getattr(cmd, "short_help", None):
        cmd.short_help = summary(cmd.help)
    for sub in getattr(cmd, "commands", {}).values():
        _set_summaries(sub)


class _Group(TyperGroup):
    """The root group: every sub-command (and its sub-commands) listed with its whole first line."""

    def get_command(self, ctx, cmd_name):
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            _set_summaries(cmd)
        return cmd


app = typer.Typer(
    cls=_Group,
    name="asymvalley",
    help="Where does a trained network sit in its valley? (Asymmetric Valleys, He, Huang, Yuan, NeurIPS 2019)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """asymvalley: train SGD/SWA solutions, probe loss along directions, certify asymmetric valleys, reproduce the paper."""


# Sub-command modules, in the order `asymvalley --help` lists them.
COMMAND_MODULES = [
    "train_cmd",
    "probe_cmd",
    "analyze_cmd",
    "reproduce_cmd",
    "valley_cmd",
    "models_cmd",
    "bench_cmd",
]

for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:  # a command whose module is not written yet
        if _exc.name != f"{__name__}.{_name}":
            raise
        continue
    _mod.register(app)


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from ..allocator import keep_freed_memory

    command = typer.main.get_command(app)
    try:
        args = sys.argv[1:] if argv is None else list(argv)
        if not args or args[0] != "bench":  # bench compares with other tools' code as a default process runs both
            keep_freed_memory()  # freed activation buffers are reused, not page-faulted in again (`asymvalley.allocator`)
        code = command.main(args=argv, prog_name="asymvalley", standalone_mode=False)
        from ..dist import finalize

        finalize()  # under torchrun: all ranks leave the process group together
    except UsageError as exc:
        fail(exc.message)
    except (typer.Abort, KeyboardInterrupt):  # before `Exception`: Abort is a RuntimeError
        fail("interrupted; rerun the same command with --resume to continue", 130)
    except Exception as exc:
        # click's usage errors (typer vendors click in recent releases): duck-typed
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            fail(" ".join(exc.format_message().split()))
        raise
    sys.exit(code if isinstance(code, int) else 0)
