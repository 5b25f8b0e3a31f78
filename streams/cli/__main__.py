"""``python -m streams.cli``: the same app as the ``streamrec`` script."""

from streams.cli import app

app()
