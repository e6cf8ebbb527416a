"""The `phi4` command: one typer app, one command per stage plus the utilities.

Bad input raises Phi4Error anywhere below; `main` prints it as one line on stderr and exits non-zero.
`--debug` (anywhere on the command line, or PHI4_DEBUG=1) shows the traceback instead.
Command modules keep heavy imports (torch) inside their functions so `phi4 cat` starts fast.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

from phi4cli.errors import Phi4Error

try:  # typer vendors click since 0.20; its usage errors are that copy's classes
    from typer import _click as click
except ImportError:  # older typer: click itself
    import click

app = typer.Typer(
    name="phi4",
    help="The Phi-4 training recipe (arXiv 2412.08905) as small composable commands over Arrow shards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    """Run `phi4 COMMAND --help` for a worked example of each command."""


# ---- commands, in pipeline order (each module keeps torch imports inside its functions) ----
from phi4cli.stages.decontam import decontam_command  # noqa: E402
from phi4cli.stages.dpo import dpo_command  # noqa: E402
from phi4cli.stages.eval import eval_command  # noqa: E402
from phi4cli.stages.filter import filter_app  # noqa: E402
from phi4cli.stages.midtrain import midtrain_command  # noqa: E402
from phi4cli.stages.mix import mix_command  # noqa: E402
from phi4cli.stages.pretrain import pretrain_command  # noqa: E402
from phi4cli.stages.pts import pts_command  # noqa: E402
from phi4cli.stages.rewrite import rewrite_command  # noqa: E402
from phi4cli.stages.sft import sft_command  # noqa: E402
from phi4cli.tools.cat import cat_command  # noqa: E402
from phi4cli.tools.convert import convert_command  # noqa: E402
from phi4cli.tools.demo_data import demo_data_command  # noqa: E402
from phi4cli.tools.ingest import ingest_command  # noqa: E402
from phi4cli.tools.plot import plot_command  # noqa: E402
from phi4cli.tools.report import report_command  # noqa: E402
from phi4cli.tools.serve import serve_command  # noqa: E402
from phi4cli.tools.stats import stats_command  # noqa: E402
from phi4cli.tools.tokenizer_cmd import tokenizer_app  # noqa: E402

app.command("demo-data")(demo_data_command)
app.command("ingest")(ingest_command)
app.add_typer(filter_app, name="filter")
app.command("rewrite")(rewrite_command)
app.command("decontam")(decontam_command)
app.command("mix")(mix_command)
app.command("pretrain")(pretrain_command)
app.command("midtrain")(midtrain_command)
app.command("sft")(sft_command)
app.command("pts")(pts_command)
app.command("dpo")(dpo_command)
app.command("eval")(eval_command)
app.command("serve")(serve_command)
app.command("convert")(convert_command)
app.command("plot")(plot_command)
app.command("report")(report_command)
app.command("cat")(cat_command)
app.command("stats")(stats_command)
app.add_typer(tokenizer_app, name="tokenizer")
# ---- end of commands ----


def _say(message: str) -> None:
    sys.stderr.write(f"phi4: error: {message}\n")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("PHI4_DEBUG") == "1"
    if debug and "--debug" in args:
        args.remove("--debug")
        os.environ["PHI4_DEBUG"] = "1"  # so code further down (and worker processes) can see it
    try:
        # standalone_mode=False: usage errors reach us as exceptions, to be printed as one line
        status = app(args=args, prog_name="phi4", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        if e.format_message():  # `phi4` or `phi4 filter` alone: the help (typer's rich help printed it already)
            click.echo(e.format_message())
        sys.exit(2)
    except click.exceptions.ClickException as e:  # usage errors: a missing -o, a bad value, an unknown command
        _say(_usage_line(e))
        sys.exit(e.exit_code)
    except typer.Abort:
        _say("interrupted")
        sys.exit(130)
    except Phi4Error as e:
        if debug:
            traceback.print_exc()
        _say(str(e).splitlines()[0] if str(e) else type(e).__name__)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        # the reader went away (`phi4 cat x | head`): not an error; silence the flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(130)
    except MemoryError:
        _say("out of memory")
        sys.exit(1)
    except Exception as e:  # a bug, not bad input: still one line, with the way to see more
        if debug:
            traceback.print_exc()
        _say(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)")
        sys.exit(1)
    if status == 130:  # typer turns Ctrl-C into exit status 130
        _say("interrupted")
    sys.exit(status if isinstance(status, int) else 0)  # `--help` returns 0; a command returns None


def _usage_line(e: click.exceptions.ClickException) -> str:
    """click's message on one line, after the command it is about: `phi4 pretrain: Missing option '-o' / '--out'.`"""
    message = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see '{ctx.command_path} --help')"
