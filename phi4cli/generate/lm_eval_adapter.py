"""lm-evaluation-harness on a phi4 checkpoint: the model class `phi4` (optional extra: `pip install 'phi4cli[lmeval]'`).

    python -m phi4cli.generate.lm_eval_adapter --model phi4 \\
        --model_args pretrained=runs/demo/pretrain,max_gen_toks=128 --tasks arc_easy --batch_size 16

lm-eval finds models only in its own registry (it has no plugin entry point), so this module registers
`phi4` when it is imported; run as above it then hands the command line to lm-eval's own CLI. From
Python: `import phi4cli.generate.lm_eval_adapter` and then `lm_eval.simple_evaluate(model="phi4", ...)`.

The three request types go straight to the phi4 engine, which does the work for `phi4 eval` too:
- loglikelihood(context, continuation)  -> Engine.loglikelihood: (sum log p, is greedy); trailing
  spaces of the context move onto the continuation; an empty context is scored after <|endoftext|>;
- loglikelihood_rolling(text)           -> Engine.loglikelihood_rolling: every token predicted
  once, the first from <|endoftext|>, in context-window chunks;
- generate_until(context, gen_kwargs)   -> Engine.generate: `until` stop strings (cut from the text),
  `max_gen_toks`, greedy unless `do_sample`; the context keeps its last (context window - max_gen_toks)
  tokens, as lm-eval's Hugging Face model does, so a long few-shot prompt never fails the run.
model_args: pretrained (required), tokenizer, dtype, device, max_length (context window), max_gen_toks,
batch_size (also lm-eval's --batch_size; "auto" = 32), seed.

Chat: `--apply_chat_template` renders each prompt with phi-4's ChatML (`apply_chat_template`, the same
template `phi4 convert --to-hf` writes); `--fewshot_as_multiturn` and `--system_instruction` work as with
lm-eval's Hugging Face model. Text is tokenized as Hugging Face tokenizers do: the special-token strings
the template writes (`<|im_start|>` ...) are the special tokens, so a rendered chat gets the ids of
`Tokenizer.render_chat`.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from phi4cli.errors import Phi4Error
from phi4cli.generate.backends import LocalBackend, split_context
from phi4cli.generate.types import SamplingParams
from phi4cli.log import console

try:
    import lm_eval.models  # noqa: F401  (lm-eval fills its registry lazily only while it is empty: fill it first)
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as e:  # the optional extra is not installed
    raise ImportError("phi4cli.generate.lm_eval_adapter needs lm-eval: pip install 'phi4cli[lmeval]'") from e

DEFAULT_BATCH_SIZE = 32
# requests handed to the engine at a time: enough for its length-sorted batches, few enough for progress
CHUNK_BATCHES = 8
GEN_KWARGS = (
    "until",
    "max_gen_toks",
    "max_new_tokens",
    "max_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "num_beams",
)


@register_model("phi4")
class Phi4LM(LM):
    """A phi4 checkpoint (run directory, checkpoint or HF directory) as an lm-eval model."""

    def __init__(
        self,
        pretrained: str | None = None,
        *,
        tokenizer: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        max_length: int | str | None = None,
        max_gen_toks: int | str = 256,
        batch_size: int | str | None = None,
        max_batch_size: int | None = None,
        seed: int | str = 0,
        **unknown: Any,
    ) -> None:
        super().__init__()  # max_batch_size: lm-eval always passes it; the engine needs only batch_size
        if unknown:
            raise Phi4Error(
                f"--model_args: unknown argument '{sorted(unknown)[0]}' (known: pretrained, tokenizer, dtype, device, "
                "max_length, max_gen_toks, batch_size, seed)"
            )
        if not pretrained:
            raise Phi4Error("--model_args: give pretrained=CHECKPOINT (a phi4 run, checkpoint or HF directory)")
        self.backend = LocalBackend.from_path(
            str(pretrained),
            max_batch_size=_batch_size(batch_size),
            device=_device(device),
            tokenizer=tokenizer,
            dtype=dtype,
            max_context=_positive(max_length, "max_length"),
        )
        self.engine = self.backend.engine
        self.tokenizer = self.backend.tokenizer
        self.max_gen_toks = _positive(max_gen_toks, "max_gen_toks")
        self.seed = int(seed)
        self._device = str(self.engine.device)

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name

    # ------------------------------------------------------------------------------------------- chat

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        """The Jinja chat template lm-eval records with the results (phi-4's ChatML whatever is asked)."""
        from phi4cli.model.hf import PHI4_CHAT_TEMPLATE

        return PHI4_CHAT_TEMPLATE if chat_template else None

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """phi-4's ChatML as text. Without the generation prompt a final assistant message stays open (lm-eval
        prefills the start of the answer that way), as transformers' `continue_final_message`."""
        parts = []
        for i, message in enumerate(chat_history):
            role, content = message.get("role"), message.get("content")
            if role not in ("system", "user", "assistant") or not isinstance(content, str):
                raise Phi4Error(
                    f"apply_chat_template: message {i} needs a role (system, user, assistant) and text content"
                )
            parts.append(f"<|im_start|>{role}<|im_sep|>{content}<|im_end|>")
        if add_generation_prompt:
            parts.append("<|im_start|>assistant<|im_sep|>")
        elif chat_history and chat_history[-1].get("role") == "assistant":
            parts[-1] = parts[-1].removesuffix("<|im_end|>")
        return "".join(parts)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode_with_specials(text)

    # ------------------------------------------------------------------------------- the requests

    def loglikelihood(self, requests: Sequence, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [self._token_pair(str(r.args[0]), str(r.args[1])) for r in requests]
        return self._in_chunks(pairs, self.engine.loglikelihood, "loglikelihood", disable_tqdm)

    def loglikelihood_rolling(self, requests: Sequence, disable_tqdm: bool = False) -> list[float]:
        texts = [self._encode(str(r.args[0])) for r in requests]
        return self._in_chunks(texts, self.engine.loglikelihood_rolling, "loglikelihood_rolling", disable_tqdm)

    def generate_until(self, requests: Sequence, disable_tqdm: bool = False) -> list[str]:
        params = [self.sampling(r.args[1] if len(r.args) > 1 else {}, i) for i, r in enumerate(requests)]
        items = [(self._prompt_ids(str(r.args[0]), p), p) for r, p in zip(requests, params)]

        def run(chunk: list[tuple[list[int], SamplingParams]]) -> list[str]:
            ids, params = zip(*chunk)
            return [g.text for g in self.engine.generate(list(ids), list(params))]

        return self._in_chunks(items, run, "generate_until", disable_tqdm)

    # --------------------------------------------------------------------------------- the pieces

    def sampling(self, gen_kwargs: dict, index: int = 0) -> SamplingParams:
        """lm-eval's generation arguments as the engine's SamplingParams (greedy unless do_sample).

        Each request draws from its own seed, the run's seed and its place in the list: a run is
        reproducible, and lm-eval's repeats of one request (for pass@k) are different samples."""
        unknown = sorted(set(gen_kwargs) - set(GEN_KWARGS))
        if unknown:
            raise Phi4Error(
                f"generate_until: unsupported generation argument '{unknown[0]}' (supported: {', '.join(GEN_KWARGS)})"
            )
        if int(gen_kwargs.get("num_beams", 1)) != 1:
            raise Phi4Error("generate_until: beam search is not built (num_beams must be 1)")
        until = gen_kwargs.get("until") or []
        budget = next(
            (gen_kwargs[k] for k in ("max_gen_toks", "max_new_tokens", "max_tokens") if gen_kwargs.get(k) is not None),
            self.max_gen_toks,
        )
        # lm-eval's convention: greedy when do_sample is false, else the given temperature (absent: greedy,
        # or 1.0 when do_sample is asked for, as Hugging Face generate)
        do_sample = gen_kwargs.get("do_sample")
        temperature = 0.0 if do_sample is False else float(gen_kwargs.get("temperature", 1.0 if do_sample else 0.0))
        return SamplingParams(
            max_new_tokens=int(budget),
            temperature=temperature,
            top_p=float(gen_kwargs.get("top_p", 1.0)),
            top_k=int(gen_kwargs.get("top_k") or 0),
            stop=[until] if isinstance(until, str) else list(until),
            seed=int(gen_kwargs.get("seed", self.seed)) * 1_000_003 + index,
        )

    def _token_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Trailing spaces of the context go to the continuation; an empty context is <|endoftext|>."""
        context, continuation = split_context(context, continuation)
        return self._encode(context) or [self.tokenizer.eot_id], self._encode(continuation)

    def _prompt_ids(self, context: str, params: SamplingParams) -> list[int]:
        """The context's tokens, cut from the left to leave room for the generation budget."""
        room = self.engine.max_context - params.max_new_tokens
        if room < 1:
            raise Phi4Error(
                f"generate_until: max_gen_toks {params.max_new_tokens} leaves no room in the context of "
                f"{self.engine.max_context}"
            )
        ids = self._encode(context) or [self.tokenizer.eot_id]
        return ids[-room:]

    def _in_chunks(self, items: list, fn, what: str, disable_tqdm: bool) -> list:
        """fn over the items a few engine batches at a time, with a progress bar on stderr."""
        from tqdm import tqdm

        step = self.engine.max_batch_size * CHUNK_BATCHES
        out: list = []
        with tqdm(total=len(items), desc=f"phi4 {what}", disable=disable_tqdm or not sys.stderr.isatty()) as bar:
            for start in range(0, len(items), step):
                out += fn(items[start : start + step])
                bar.update(min(step, len(items) - start))
        return out


def _batch_size(value: int | str | None) -> int:
    if value is None or str(value).startswith("auto"):
        return DEFAULT_BATCH_SIZE  # the engine sorts by length and cuts finished rows; no memory probing
    return _positive(value, "batch_size")


def _positive(value: int | str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise Phi4Error(f"--model_args: {name} must be an integer, got {value!r}")
    if number < 1:
        raise Phi4Error(f"--model_args: {name} must be positive, got {number}")
    return number


def _device(requested: str | None) -> str:
    """lm-eval's CLI asks for cuda:0 unless told otherwise; without a GPU that means the CPU."""
    import torch

    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        console.print(f"phi4: device {requested} is not available here: using the CPU")
        return "cpu"
    return requested


def main() -> None:
    """lm-eval's command line with `--model phi4` available; a bad input is one line and exit 2."""
    from lm_eval.__main__ import cli_evaluate

    try:
        cli_evaluate()
    except Phi4Error as e:
        print(f"phi4: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
