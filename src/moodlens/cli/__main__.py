"""`python -m moodlens.cli` (and `torchrun -m moodlens.cli train` for DDP)."""

from moodlens.cli import run

run()
