"""`python -m cryoneuro.cli …` runs the CLI (used by tools that start a server process)."""

from cryoneuro.cli import main

main()
