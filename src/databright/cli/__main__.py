"""``python -m databright.cli``: the ``databright`` command without an installed script."""

from databright.cli import main

if __name__ == "__main__":
    main()
