"""`python -m croctl`."""

from croctl.cli import main

main()
