"""Inference: translating images of any size with a trained generator (tiled when large) and exporting it.
Nothing here imports training."""
