"""The index bundle on disk: manifest, metadata, generations written atomically and read back."""
