"""`phi4 convert`: weights between Hugging Face Phi3ForCausalLM directories and phi4 checkpoints."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from phi4cli.errors import Phi4Error

DTYPES = ("auto", "float32", "bfloat16", "float16")


def convert_command(
    out: Path = typer.Argument(..., help="Directory to write; must not exist yet."),
    from_hf: Path = typer.Option(None, "--from-hf", help="Hugging Face Phi3ForCausalLM directory to import."),
    to_hf: Path = typer.Option(None, "--to-hf", help="phi4 checkpoint or run directory (latest checkpoint) to export."),
    dtype: str = typer.Option(
        "auto", "--dtype", help=f"Weights dtype to write: {', '.join(DTYPES)} (auto = as stored)."
    ),
    tokenizer: str = typer.Option(
        None, "--tokenizer", help="Tokenizer spec to record/copy instead of the one the weights name ('phi4', a path)."
    ),
) -> None:
    """Convert weights between Hugging Face `Phi3ForCausalLM` (safetensors) and phi4 checkpoints.

    `--from-hf` makes OUT a phi4 checkpoint (torch.distributed.checkpoint + model.json) that the
    trainers and generation load like any other; `--to-hf` writes model.safetensors, config.json and the
    tokenizer files (tokenizer.json, tokenizer_config.json with phi-4's chat template, special_tokens_map.json,
    generation_config.json), ready for transformers' AutoTokenizer/AutoModelForCausalLM or vLLM. Parameter
    names are the same on both sides.

    Example (the released phi-4 in, the latest checkpoint of a run out):

        phi4 convert --from-hf ~/hf/phi-4 ckpt/phi-4

        phi4 convert --to-hf runs/demo/midtrain hf/my-phi4 --dtype bfloat16
    """
    if (from_hf is None) == (to_hf is None):
        raise Phi4Error("convert: give exactly one of --from-hf HF_DIR or --to-hf CHECKPOINT")
    if dtype not in DTYPES:
        raise Phi4Error(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    if Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())):
        raise Phi4Error(f"{out}: already exists (choose a new output directory)")
    if from_hf is not None:
        _from_hf(from_hf, out, dtype, tokenizer)
    else:
        _to_hf(to_hf, out, dtype, tokenizer)


def _torch_dtype(name: str):
    import torch

    return None if name == "auto" else getattr(torch, name)


def _from_hf(source: Path, out: Path, dtype: str, tokenizer_spec: str | None) -> None:
    from phi4cli.model import load_hf, save_checkpoint_model_only
    from phi4cli.model.hf import is_hf_dir

    if not is_hf_dir(source):
        raise Phi4Error(f"{source}: not a Hugging Face model directory (no config.json)")
    model, config = load_hf(source, dtype=_torch_dtype(dtype))
    spec = tokenizer_spec or model.tokenizer_spec
    # phi-4's tokenizer is named; any other is copied into the checkpoint so it stays self-contained
    tok = _load_tokenizer(spec, config.vocab_size) if spec and spec != "phi4" else None
    with _writing(out):
        save_checkpoint_model_only(model, out, spec, tokenizer=tok)
    _report(out, model, spec)


def _to_hf(source: Path, out: Path, dtype: str, tokenizer_spec: str | None) -> None:
    from phi4cli.model import load_model, resolve_model_path, save_hf

    kind, path = resolve_model_path(source)
    if kind != "checkpoint":
        raise Phi4Error(f"{source}: already a Hugging Face directory (use --from-hf to import it)")
    model = load_model(path, dtype=_torch_dtype(dtype))
    spec = tokenizer_spec or model.tokenizer_spec
    tok = _load_tokenizer(spec, model.config.vocab_size) if spec else None
    with _writing(out):
        save_hf(model, model.config, out, tokenizer=tok)
    _report(out, model, spec)


@contextlib.contextmanager
def _writing(out: Path) -> Iterator[None]:
    """An output that cannot be written (a parent that is a file, a read-only or full disk) is one line; the
    writer is atomic, so nothing half-written is left."""
    try:
        yield
    except OSError as e:
        raise Phi4Error(f"{out}: cannot write ({e.strerror or e}{': ' + str(e.filename) if e.filename else ''})")


def _load_tokenizer(spec: str, model_vocab: int):
    from phi4cli.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(spec)
    if tokenizer.vocab_size > model_vocab:
        raise Phi4Error(
            f"{spec}: tokenizer has {tokenizer.vocab_size} ids, the model only {model_vocab} embedding rows"
        )
    return tokenizer


def _report(out: Path, model, spec: str | None) -> None:
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    tok = f"tokenizer {spec}" if spec else "no tokenizer recorded (pass --tokenizer SPEC)"
    sys.stderr.write(f"phi4 convert: wrote {out} ({model.num_params():,} parameters, {dtype}, {tok})\n")
