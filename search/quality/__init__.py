"""Measuring and raising search quality on the user's own photos: evaluation, fine-tuning, duplicates."""
