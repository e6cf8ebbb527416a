"""The `phi4` command: one typer app, one command per stage plus the utilities.

Bad input raises Phi4Error anywhere below; `main` prints it as one line on stderr and exits non-zero.
`--debug` (anywhere on the command line, or PHI4_DEBUG=1) shows the traceback instead.

Commands are loaded lazily: `COMMANDS` names each one's module, so `phi4 --help` imports no command module and
`phi4 cat ...` imports only cat's (pyarrow, torch, tiktoken stay out of the startup path; bench/startup.py).
Command modules still keep heavy imports (torch) inside their functions so their own `--help` starts fast.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

from phi4cli.errors import Phi4Error

try:  # typer vendors click since 0.20; its usage errors are that copy's classes
    from typer import _click as click
except ImportError:  # older typer: click itself
    import click

# ---- commands, in the order `phi4 --help` lists them: name -> (module, attribute, the line `phi4 --help` shows).
# The attribute is a command function or a typer.Typer of subcommands. The line is the first paragraph of the
# command's own help (tests/test_cli_startup.py checks they agree), so listing the commands imports none of them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo-data": (
        "phi4cli.tools.demo_data",
        "demo_data_command",
        "Write the toy world: the embedded default data the whole recipe runs on, no downloads needed.",
    ),
    "ingest": (
        "phi4cli.tools.ingest",
        "ingest_command",
        "Turn external files into a dataset: documents, chat, pairs or problems (see docs/formats.md).",
    ),
    "rewrite": (
        "phi4cli.stages.rewrite",
        "rewrite_command",
        "Generate synthetic data: run a recipe (prompt templates, sampling, steps, parsers, what to keep) over"
        " INPUTS with an OpenAI-compatible server or a local checkpoint, and write documents (for `mix`), chat"
        " (for `sft`), problems (for `pts`/`eval`) or pairs (for `dpo`).",
    ),
    "decontam": (
        "phi4cli.stages.decontam",
        "decontam_command",
        "Remove benchmark leakage with the paper's hybrid 13/7-gram rule and a whitelist of common phrases.",
    ),
    "mix": (
        "phi4cli.stages.mix",
        "mix_command",
        "Mix, tokenise and pack the pretraining sources into fixed-length sequences.",
    ),
    "pretrain": ("phi4cli.stages.pretrain", "pretrain_command", "Pretrain a model on packed token sequences."),
    "midtrain": (
        "phi4cli.stages.midtrain",
        "midtrain_command",
        "Midtrain a pretrained model: longer context, RoPE base 250K, peak LR / 10.",
    ),
    "sft": (
        "phi4cli.stages.sft",
        "sft_command",
        "Supervised fine-tuning on chat conversations (ChatML, loss on the assistant's turns only).",
    ),
    "pts": (
        "phi4cli.stages.pts",
        "pts_command",
        "Find pivotal tokens in the model's own solutions and write them as DPO pairs (exact token ids).",
    ),
    "dpo": (
        "phi4cli.stages.dpo",
        "dpo_command",
        "Direct preference optimisation on chosen/rejected pairs, against the frozen starting model.",
    ),
    "eval": (
        "phi4cli.stages.eval",
        "eval_command",
        "Evaluate a model on benchmarks; write results.json and print a markdown table.",
    ),
    "serve": (
        "phi4cli.tools.serve",
        "serve_command",
        "Serve a checkpoint over OpenAI's HTTP API: /v1/completions (with echo + prompt logprobs for scoring),"
        " /v1/chat/completions (phi-4's ChatML template), streaming (stream=true), /v1/models, vLLM's /tokenize,"
        " /detokenize and /tokenizer_info, /health and /metrics. Concurrent requests are decoded together in"
        " batches formed round-robin across requests; a request whose client disconnects stops computing. Any"
        " OpenAI client (or `phi4 eval --model URL`, or lm-eval's local-completions) can use it.",
    ),
    "convert": (
        "phi4cli.tools.convert",
        "convert_command",
        "Convert weights between Hugging Face `Phi3ForCausalLM` (safetensors) and phi4 checkpoints.",
    ),
    "plot": ("phi4cli.tools.plot", "plot_command", "Plot training loss and tokens/s against the step."),
    "report": (
        "phi4cli.tools.report",
        "report_command",
        "Write RUN_ROOT/report.md and its PNG figures from the files the stages wrote.",
    ),
    "cat": (
        "phi4cli.tools.cat",
        "cat_command",
        "Print rows as JSON lines, or write them to a JSONL or Parquet file.",
    ),
    "stats": ("phi4cli.tools.stats", "stats_command", "Summarise datasets: rows, bytes, per-source counts, schema."),
    "filter": (
        "phi4cli.stages.filter",
        "filter_app",
        "The organic-web quality gate: heuristic rules, language id, quality classifier, dedup.",
    ),
    "tokenizer": (
        "phi4cli.tools.tokenizer_cmd",
        "tokenizer_app",
        "Inspect the phi-4 tokenizer, or train a small one for toy scale.",
    ),
}
# ---- end of commands ----


class LazyGroup(TyperGroup):
    """The root group: lists `COMMANDS` from the table and imports a command's module only when it runs.

    Until then `commands` holds light stand-ins that carry only the name and the line `phi4 --help` shows.
    Commands registered the eager way (`app.command(...)`) still work: typer hands them to us in `commands`.
    """

    def __init__(self, *, commands: dict[str, click.Command] | None = None, **attrs: Any) -> None:
        self._stand_ins = {name: TyperCommand(name=name, help=line) for name, (_, _, line) in COMMANDS.items()}
        super().__init__(commands={**self._stand_ins, **(commands or {})}, **attrs)
        self._listing = False  # True while the root help is formatted: list the stand-ins, import nothing

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None and command is self._stand_ins.get(cmd_name) and not self._listing:
            command = self.commands[cmd_name] = self._load(cmd_name)
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def _load(self, name: str) -> click.Command:
        """The click command typer would have built had `app.command(name)`/`app.add_typer(name=)` registered it."""
        module, attribute, _ = COMMANDS[name]
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            return get_group_from_info(
                TyperInfo(target, name=name),
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
                suggest_commands=app.suggest_commands,
            )
        return get_command_from_info(
            CommandInfo(name=name, callback=target),
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=app.rich_markup_mode,
        )


app = typer.Typer(
    name="phi4",
    help="The Phi-4 training recipe (arXiv 2412.08905) as small composable commands over Arrow shards.",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    """Run `phi4 COMMAND --help` for a worked example of each command."""


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
