"""phi4: the Phi-4 training recipe (arXiv 2412.08905) as small composable commands."""

__version__ = "0.1.0"
