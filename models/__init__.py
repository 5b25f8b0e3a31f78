"""Torch models, training and scoring for streamrec."""
