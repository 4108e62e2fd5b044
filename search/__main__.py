"""``python -m search`` is the same as the ``hpsearch`` command."""

from search.cli import entry_point

if __name__ == "__main__":
    entry_point()
