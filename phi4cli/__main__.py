"""`python -m phi4cli ...` — the form torchrun launches (`torchrun ... -m phi4cli pretrain ...`)."""

from phi4cli.cli import main

main()
