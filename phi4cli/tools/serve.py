"""`phi4 serve`: an OpenAI-compatible HTTP server over a phi4 checkpoint (see phi4cli/generate/server.py)."""

from __future__ import annotations

import typer


def serve_command(
    model: str = typer.Option(
        ..., "--model", "-m", help="phi4 checkpoint, run directory (latest checkpoint) or HF directory."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(
        8000, "--port", min=0, max=65535, help="Port (0: any free port; the chosen one is printed)."
    ),
    name: str = typer.Option(
        None, "--name", help="Model id in /v1/models and responses (default: the directory name)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Sequences decoded together at most (one batch)."),
    batch_wait_ms: float = typer.Option(
        5.0, "--batch-wait-ms", min=0.0, help="How long to gather concurrent requests into one batch."
    ),
    tokenizer: str = typer.Option(None, "--tokenizer", help="Tokenizer spec when the checkpoint names none."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    dtype: str = typer.Option(
        "auto", "--dtype", help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16 or float16."
    ),
    max_rows: int = typer.Option(
        1024, "--max-rows", min=1, help="Most sequences (prompts x n) one request may ask for."
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", min=0.1, help="Seconds a client may stall sending a request or reading an answer."
    ),
    api_key: str = typer.Option(
        None, "--api-key", envvar="PHI4_API_KEY", help="Require 'Authorization: Bearer KEY' (not on /health, /metrics)."
    ),
) -> None:
    """Serve a checkpoint over OpenAI's HTTP API: /v1/completions (with echo + prompt logprobs for
    scoring), /v1/chat/completions (phi-4's ChatML template), streaming (stream=true), /v1/models,
    vLLM's /tokenize, /detokenize and /tokenizer_info, /health and /metrics. Concurrent requests are
    decoded together in batches formed round-robin across requests; a request whose client disconnects
    stops computing. Any OpenAI client (or `phi4 eval --model URL`, or lm-eval's local-completions) can use it.

    Example:

        phi4 serve --model runs/demo/midtrain --port 8000 &

        curl -s localhost:8000/v1/completions -d '{"prompt": "Question: 2 + 3?\\nAnswer:", "max_tokens": 8}'
    """
    from phi4cli.generate.server import serve

    serve(
        model,
        host=host,
        port=port,
        name=name,
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        max_rows=max_rows,
        timeout=timeout,
        api_key=api_key,
    )
