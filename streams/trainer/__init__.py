"""The lifelong trainer (``streamrec trainer``), a process of its own beside the workers: it
trains new model versions, gates their promotion on what workers logged, and reads the
off-policy logs."""
