"""Hugging Face format in and out: a `Phi3ForCausalLM` directory (config.json + safetensors).

Parameter names are identical on both sides (see phi4.py), so conversion is only about the config and
the files. Import refuses configs whose model this code would compute differently (sliding window,
partial or scaled RoPE, tied embeddings, biases, another activation) rather than load them wrongly.
Export writes a config that transformers 4.x, 5.x and vLLM all read, and, given a tokenizer, what
microsoft/phi-4 ships beside its weights: tokenizer.json, tokenizer_config.json (chat template,
bos/eos/pad), special_tokens_map.json and generation_config.json.

The tokenizer.json is the tiktoken encoding restated for Hugging Face's `tokenizers`: the same
pre-tokenisation regex (a Split), GPT-2's byte-to-character mapping (ByteLevel without its own regex),
and a byte-level BPE whose vocabulary is tiktoken's ranks. tiktoken merges, at each step, the adjacent
pair whose concatenation has the lowest rank; a BPE whose merge list holds every split (a, b) of every
token into two tokens, ordered by the rank of a + b, makes the same choices, and `ignore_merges` takes a
pre-token that is itself a token whole, as tiktoken does. The special tokens are added tokens.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from phi4cli.errors import Phi4Error
from phi4cli.model.checkpoint import atomic_directory, write_json
from phi4cli.model.config import ModelConfig
from phi4cli.model.phi4 import Phi4ForCausalLM

PHI4_SPECIAL_IDS = {"bos_token_id": 100257, "eos_token_id": 100265, "pad_token_id": 100349}  # PHI4-RECIPE.md
MAX_SHARD_BYTES = 5 * 2**30  # Hugging Face's customary shard size
SHAPE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "rms_norm_eps",
    "max_position_embeddings",
)
IGNORED_TENSORS = ("rotary_emb.inv_freq",)  # old exports saved the RoPE table; we recompute it
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


# ------------------------------------------------------------------------------------------ import


def read_hf_config(directory: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """config.json -> (ModelConfig, the raw dict). Unsupported variants raise Phi4Error."""
    path = Path(directory) / "config.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Phi4Error(f"{path}: cannot read ({e})")
    if not isinstance(raw, dict):
        raise Phi4Error(f"{path}: expected a JSON object")
    _check_supported(raw, path)
    fields = {name: raw[name] for name in SHAPE_FIELDS if raw.get(name) is not None}
    fields["num_key_value_heads"] = raw.get("num_key_value_heads") or raw.get("num_attention_heads")
    fields["rope_theta"] = _rope(raw).get("rope_theta", raw.get("rope_theta", 10000.0))
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        config = ModelConfig.from_dict(fields)
    except Phi4Error as e:
        raise Phi4Error(f"{path}: {e}")
    return config, raw


def _rope(raw: dict) -> dict:
    """The RoPE settings: transformers 5 writes `rope_parameters`, older files `rope_scaling`."""
    return raw.get("rope_parameters") or raw.get("rope_scaling") or {}


def _check_supported(raw: dict, path: Path) -> None:
    def refuse(what: str, why: str = "phi4 implements the phi-4 architecture only") -> Phi4Error:
        return Phi4Error(f"{path}: {what} is not supported ({why})")

    if raw.get("model_type") != "phi3":
        raise refuse(f"model_type {raw.get('model_type')!r} (expected 'phi3')")
    if raw.get("hidden_act", "silu") != "silu":
        raise refuse(f"hidden_act {raw['hidden_act']!r}")
    window = raw.get("sliding_window")
    if window is not None and window < raw.get("max_position_embeddings", 4096):
        raise refuse(f"sliding_window {window}", "phi-4 uses full attention")
    rope = _rope(raw)
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise refuse(f"rope scaling {rope.get('rope_type', rope.get('type'))!r}")
    partial = rope.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0))
    if partial != 1.0:
        raise refuse(f"partial_rotary_factor {partial}")
    if raw.get("tie_word_embeddings"):
        raise refuse("tie_word_embeddings true")
    for bias in ("attention_bias", "mlp_bias"):
        if raw.get(bias):
            raise refuse(f"{bias} true")
    heads, hidden = raw.get("num_attention_heads"), raw.get("hidden_size")
    if raw.get("head_dim") is not None and heads and hidden and raw["head_dim"] * heads != hidden:
        raise refuse(f"head_dim {raw['head_dim']} != hidden_size / num_attention_heads")


def load_hf(
    directory: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[Phi4ForCausalLM, ModelConfig]:
    """Read a Hugging Face Phi3ForCausalLM directory. dtype None keeps the stored dtype."""
    directory = Path(directory)
    config, raw = read_hf_config(directory)
    with torch.device("meta"):
        model = Phi4ForCausalLM(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    state = _read_safetensors(directory, expected, dtype)
    model.load_state_dict(state, assign=True)
    model = model.to(device)
    model.tokenizer_spec = hf_tokenizer_spec(directory, raw)
    return model, config


def _read_safetensors(directory: Path, expected: dict[str, tuple], dtype: torch.dtype | None) -> dict:
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for file in _safetensors_files(directory):
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    if name.endswith(IGNORED_TENSORS):
                        continue
                    if name not in expected:
                        raise Phi4Error(f"{file}: unexpected tensor {name} (not a phi-4 parameter)")
                    tensor = f.get_tensor(name)
                    if tuple(tensor.shape) != expected[name]:
                        raise Phi4Error(
                            f"{file}: tensor {name} has shape {list(tensor.shape)}, "
                            f"config.json implies {list(expected[name])}"
                        )
                    state[name] = tensor if dtype is None else tensor.to(dtype)
        except Phi4Error:
            raise
        except Exception as e:  # safetensors raises its own error types for corrupt files
            raise Phi4Error(f"{file}: cannot read safetensors ({e})")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise Phi4Error(f"{directory}: tensor {missing[0]} is missing from the safetensors files")
    return state


def _safetensors_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise Phi4Error(f"{index}: not a safetensors index ({e})")
        return [directory / name for name in sorted(set(weight_map.values()))]
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    raise Phi4Error(f"{directory}: no model.safetensors or model.safetensors.index.json")


def hf_tokenizer_spec(directory: Path, raw: dict) -> str | None:
    """The tokenizer of an HF directory: one saved by phi4 in it, phi-4's own, or unknown (None)."""
    sidecar = directory / "tokenizer.tiktoken.json"
    if (directory / "tokenizer.tiktoken").is_file():
        return str(directory.resolve())  # a trained (toy) tokenizer exported with the weights
    if sidecar.is_file():  # phi-4's tokenizer is saved as a named sidecar only
        try:
            name = json.loads(sidecar.read_text()).get("name")
        except (OSError, ValueError, AttributeError) as e:
            raise Phi4Error(f"{sidecar}: not a tokenizer sidecar ({e})")
        return "phi4" if name == "phi4" else str(directory.resolve())
    looks_like_phi4 = raw.get("vocab_size") == 100352 and raw.get("bos_token_id") == PHI4_SPECIAL_IDS["bos_token_id"]
    return "phi4" if looks_like_phi4 else None


# --------------------------------------------------------------------------------- tokenizer export

# phi-4's ChatML as a Jinja template: the same ids as Tokenizer.render_chat once the special tokens are
# read as special (each text between them is encoded on its own there too).
PHI4_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('phi-4 chat roles are system, user and assistant') }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"
)
BOS, EOS, PAD = "<|endoftext|>", "<|im_end|>", "<|dummy_85|>"  # phi-4's own choice (its tokenizer_config.json)


def byte_characters() -> list[str]:
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes stand for themselves, the others
    take the characters from U+0100 on, in byte order (the alphabet of every byte-level BPE on the Hub)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def onig_pattern(pattern: str) -> str:
    """tiktoken's regex for `tokenizers` (Oniguruma, Ruby syntax): there `X{1,3}+` is not possessive but
    "one or more of X{1,3}" (any run of digits), so the `+` goes; with nothing after it to backtrack into,
    the greedy form matches the same."""
    return re.sub(r"(\{\d+(?:,\d*)?\})\+", r"\1", pattern)


def tokenizer_json_dict(tokenizer) -> dict[str, Any]:
    """tokenizer.json for `tokenizers`/transformers, giving the same ids as the phi4 tokenizer."""
    encoding = tokenizer.encoding
    ranks: dict[bytes, int] = encoding._mergeable_ranks
    table = byte_characters()

    def text(token: bytes) -> str:
        return "".join(table[b] for b in token)

    merges = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    specials = sorted(encoding._special_tokens.items(), key=lambda item: item[1])
    added = [
        {
            "id": i,
            "content": name,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for name, i in specials
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": onig_pattern(encoding._pat_str)},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": {text(token): rank for token, rank in ranks.items()},
            "merges": [[text(left), text(right)] for *_, left, right in merges],
        },
    }


def tokenizer_config_dict(tokenizer, model_max_length: int) -> dict[str, Any]:
    """tokenizer_config.json: the tokenizer class, bos/eos/pad, the chat template, the special tokens."""
    decoder = {
        str(i): {
            "content": name,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for name, i in tokenizer.encoding._special_tokens.items()
    }
    return {
        "add_bos_token": False,  # phi-4 prepends nothing: a document's <|endoftext|> is part of its text
        "add_eos_token": False,
        "added_tokens_decoder": dict(sorted(decoder.items(), key=lambda item: int(item[0]))),
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": None,
        "chat_template": PHI4_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def generation_config_dict(tokenizer) -> dict[str, Any]:
    """generation_config.json: generation stops at <|im_end|> or <|endoftext|>, as phi4's engine does."""
    return {
        "bos_token_id": tokenizer.eot_id,
        "eos_token_id": [tokenizer.im_end_id, tokenizer.eot_id],
        "pad_token_id": tokenizer.pad_id,
    }


def save_hf_tokenizer(tokenizer, directory: str | Path, model_max_length: int) -> None:
    """Write the four Hugging Face tokenizer/generation files into `directory` (each atomically)."""
    directory = Path(directory)
    special_map = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD}
    write_json(directory / "tokenizer.json", tokenizer_json_dict(tokenizer))
    write_json(directory / "tokenizer_config.json", tokenizer_config_dict(tokenizer, model_max_length))
    write_json(directory / "special_tokens_map.json", special_map)
    write_json(directory / "generation_config.json", generation_config_dict(tokenizer))


# ------------------------------------------------------------------------------------------ export


def save_hf(
    model: Phi4ForCausalLM,
    config: ModelConfig,
    out_dir: str | Path,
    tokenizer=None,
    *,
    dtype: torch.dtype | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> Path:
    """Write `out_dir` (must not exist, or be empty) as a Phi3ForCausalLM directory, atomically:
    model.safetensors (sharded with an index past `max_shard_bytes`), config.json, and the
    tokenizer's files when a tokenizer is given. dtype None keeps the model's dtype."""
    from safetensors.torch import save_file

    state = {name: t.detach().to("cpu", dtype or t.dtype).contiguous() for name, t in model.state_dict().items()}
    saved_dtype = next(iter(state.values())).dtype
    special_ids = _special_ids(tokenizer, model.tokenizer_spec, config)
    with atomic_directory(out_dir) as tmp:
        shards = _split_into_shards(state, max_shard_bytes)
        if len(shards) == 1:
            save_file(shards[0], str(tmp / "model.safetensors"), metadata={"format": "pt"})
        else:
            weight_map = {}
            for i, shard in enumerate(shards, 1):
                name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                save_file(shard, str(tmp / name), metadata={"format": "pt"})
                weight_map.update(dict.fromkeys(shard, name))
            total = sum(t.numel() * t.element_size() for t in state.values())
            write_json(
                tmp / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map}
            )
        write_json(tmp / "config.json", hf_config_dict(config, saved_dtype, special_ids))
        if tokenizer is not None:
            tokenizer.save(tmp)  # phi4's own files: a re-import finds the exact tokenizer again
            save_hf_tokenizer(tokenizer, tmp, config.max_position_embeddings)
    return Path(out_dir)


def _split_into_shards(state: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def _special_ids(tokenizer, tokenizer_spec: str | None, config: ModelConfig) -> dict[str, int | None]:
    if tokenizer is not None:
        return {"bos_token_id": tokenizer.eot_id, "eos_token_id": tokenizer.im_end_id, "pad_token_id": tokenizer.pad_id}
    if tokenizer_spec == "phi4" and config.vocab_size == 100352:
        return dict(PHI4_SPECIAL_IDS)
    # Unknown ids are written as null: transformers' defaults (pad 32000) would not fit a small vocabulary.
    return dict.fromkeys(PHI4_SPECIAL_IDS)


def hf_config_dict(config: ModelConfig, dtype: torch.dtype, special_ids: dict[str, int | None]) -> dict[str, Any]:
    """A Phi3Config for this model. RoPE is written both ways: `rope_theta` (transformers 4, vLLM) and
    `rope_parameters` (transformers 5)."""
    dtype_name = DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))
    return {
        "architectures": ["Phi3ForCausalLM"],
        "model_type": "phi3",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "hidden_act": "silu",
        "rms_norm_eps": config.rms_norm_eps,
        "max_position_embeddings": config.max_position_embeddings,
        "original_max_position_embeddings": config.max_position_embeddings,
        "rope_theta": config.rope_theta,
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta, "partial_rotary_factor": 1.0},
        "sliding_window": None,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "embd_pdrop": 0.0,
        "resid_pdrop": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "torch_dtype": dtype_name,
        **special_ids,
    }
