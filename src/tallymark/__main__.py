"""``python -m tallymark`` runs the command line."""

from tallymark.cli import main

main()
