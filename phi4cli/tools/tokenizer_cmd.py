"""`phi4 tokenizer info|encode|decode|train`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import typer

from phi4cli.errors import Phi4Error
from phi4cli.io import read_batches, resolve_inputs
from phi4cli.log import console

tokenizer_app = typer.Typer(
    help="Inspect the phi-4 tokenizer, or train a small one for toy scale.", no_args_is_help=True
)

SPEC_HELP = "phi4 (cl100k + phi-4 specials), a .tiktoken file, or a checkpoint directory."
BPE_HELP = "Path of the cl100k_base BPE file [default: looked up in $TIKTOKEN_CACHE_DIR]."


def _load(spec: str, bpe_file: str | None):
    from phi4cli.tokenizer import load_tokenizer

    if bpe_file is not None and not Path(bpe_file).is_file():  # never fall back silently to the cache
        raise Phi4Error(f"{bpe_file}: no such file (--bpe-file)")
    return load_tokenizer(spec, bpe_file)


@tokenizer_app.command("info")
def info(
    tokenizer: str = typer.Argument("phi4", help=SPEC_HELP),
    bpe_file: str = typer.Option(None, "--bpe-file", help=BPE_HELP),
) -> None:
    """Print the vocabulary size and special tokens as JSON.

    Example:

        phi4 tokenizer info phi4
    """
    tok = _load(tokenizer, bpe_file)
    specials = dict(sorted(tok.encoding._special_tokens.items(), key=lambda kv: kv[1]))
    print(
        json.dumps(
            {
                "name": tok.name,
                "vocab_size": tok.vocab_size,
                "bos": tok.eot_id,
                "eos": tok.im_end_id,
                "pad": tok.pad_id,
                "special_tokens": specials,
            },
            indent=1,
        )
    )


@tokenizer_app.command("encode")
def encode(
    text: str = typer.Argument(..., help="Text to encode; special tokens such as <|im_start|> are allowed."),
    tokenizer: str = typer.Option("phi4", "--tokenizer", "-t", help=SPEC_HELP),
    bpe_file: str = typer.Option(None, "--bpe-file", help=BPE_HELP),
) -> None:
    """Print the token ids of TEXT as a JSON list.

    Example:

        phi4 tokenizer encode '<|im_start|>Hello<|im_sep|> World<|im_end|><|dummy_85|>'
    """
    print(json.dumps(_load(tokenizer, bpe_file).encode_with_specials(text)))


@tokenizer_app.command("decode")
def decode(
    ids: str = typer.Argument(..., help="Token ids: a JSON list or space/comma-separated integers."),
    tokenizer: str = typer.Option("phi4", "--tokenizer", "-t", help=SPEC_HELP),
    bpe_file: str = typer.Option(None, "--bpe-file", help=BPE_HELP),
) -> None:
    """Print the text of token IDS.

    Example:

        phi4 tokenizer decode '[100264, 9906, 100266]'
    """
    try:
        values = json.loads(ids) if ids.strip().startswith("[") else [int(x) for x in ids.replace(",", " ").split()]
    except ValueError:
        raise Phi4Error(f"ids: not a list of integers: {ids!r}")
    tok = _load(tokenizer, bpe_file)
    bad = [i for i in values if not isinstance(i, int) or not 0 <= i < tok.vocab_size]
    if bad:
        raise Phi4Error(f"ids: {bad[0]!r} is not a token id of {tok.name} (0..{tok.vocab_size - 1})")
    print(tok.decode(values))


@tokenizer_app.command("train")
def train(
    inputs: list[str] = typer.Argument(..., help="Documents datasets (or shards, globs, -) to learn from."),
    out: str = typer.Option(
        ..., "-o", "--out", help="Output .tiktoken file (a .tiktoken.json sidecar is written beside it)."
    ),
    vocab_size: int = typer.Option(4096, help="Total ids including the 96 phi-4 special tokens (toy scale: 2k-8k)."),
    max_bytes: int = typer.Option(32_000_000, help="Text sampled for training, shared equally between inputs."),
    text_field: str = typer.Option("text", help="Column holding the text."),
    name: str = typer.Option("toy", help="Name of the encoding."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT (and its sidecar)."),
) -> None:
    """Train a small byte-level BPE in tiktoken format (numbers in groups of up to three digits, as cl100k).

    Example:

        phi4 tokenizer train data/demo/web data/demo/code data/demo/synthetic -o data/demo/toy.tiktoken
    """
    from phi4cli.tokenizer import train_bpe, write_tokenizer

    if vocab_size > 200_000:
        raise Phi4Error(f"--vocab-size: {vocab_size} is not a toy vocabulary (at most 200,000)")
    existing = [p for p in (Path(out), Path(f"{out}.json")) if p.exists()]
    if existing and not overwrite:
        raise Phi4Error(f"{existing[0]}: already exists (pass --overwrite to replace it)")
    if Path(out).is_dir():
        raise Phi4Error(f"{out}: is a directory (-o names the .tiktoken file to write)")
    budget = max_bytes // len(inputs)
    texts = [text for spec in inputs for text in _sample(spec, text_field, budget)]
    if not any(texts):
        raise Phi4Error(f"{', '.join(inputs)}: no text to train on")
    ranks = train_bpe(texts, vocab_size)
    tok = write_tokenizer(ranks, out, name=name)
    console.print(f"tokenizer: {tok.vocab_size:,} ids ({len(ranks):,} ranks + 96 specials) -> {out}")


def _sample(spec: str, text_field: str, budget: int) -> Iterator[str]:
    """The first `budget` bytes of text of one input."""
    used = 0
    for batch in read_batches(resolve_inputs([spec]), [text_field]):
        for text in batch.column(0).to_pylist():
            if used >= budget:
                return
            text = (text or "")[: budget - used]
            used += len(text.encode("utf-8"))
            yield text
