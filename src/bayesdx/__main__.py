"""``python -m bayesdx``: the command line (the same as the ``bayesdx`` script)."""

from bayesdx.cli import main

main()
