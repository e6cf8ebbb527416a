"""Generation: the batched KV-cache engine and the backends (local checkpoint / OpenAI-compatible HTTP).

Importing this package does not import torch; `Engine` and `LocalBackend` do when they are used.
"""

from phi4cli.generate.backends import Backend, LocalBackend, OpenAIBackend, is_url, load_backend
from phi4cli.generate.types import Generation, SamplingParams, Score

__all__ = [
    "Backend",
    "Generation",
    "LocalBackend",
    "OpenAIBackend",
    "SamplingParams",
    "Score",
    "is_url",
    "load_backend",
]
