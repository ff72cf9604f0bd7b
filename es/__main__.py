"""`python -m es` is the `es` command."""

from es.cli import main

main()
