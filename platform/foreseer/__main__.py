"""``python -m foreseer`` runs the command line."""

from foreseer.cli import main

main()
