"""``python -m streams``: the ``streamrec`` CLI; workers are started as child processes this way."""

from streams.cli import app

app()
