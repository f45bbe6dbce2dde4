"""`python -m croctl`."""

from croctl.console import main

main()
