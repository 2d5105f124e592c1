"""The dual encoder: model loading, its fingerprint, text and image encoding, image decoding."""
