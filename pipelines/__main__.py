"""``python -m pipelines`` is ``mwb``."""

from pipelines.cli import main

main()
