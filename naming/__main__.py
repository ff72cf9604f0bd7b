"""`python -m naming` is the `ns` command."""

from naming.cli import main

main()
