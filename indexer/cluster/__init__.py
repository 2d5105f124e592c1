"""The build on a Ray cluster (``python -m indexer build PHOTOS --ray [ADDRESS]``).

``session`` connects to (or starts) Ray; ``listing`` lists the photo folder
with one task per top-level folder; ``actors`` reads, hashes, decodes and
embeds groups of files on a Ray Data actor pool with the build's own stages
and writes each group as a shard (``shards``); ``executor`` runs the job from
the driver and reads the shards back for the bundle's writer.
"""
