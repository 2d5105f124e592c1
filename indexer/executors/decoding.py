"""Reading and decoding the files of a build, ahead of the model, in file order.

Files go in chunks of :data:`CHUNK`; each chunk is read, hashed and decoded
by :func:`read_and_decode`, in this process (``--workers 0``), in worker
processes (``indexer.executors.workers``) or, when JPEGs are left to the
encoder's device, in threads: reading and hashing release the GIL, and
passing the bytes of files read by other processes to this one would cost
more than reading them here. Either way a bounded number of chunks is in
flight, so memory stays flat.
"""

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import islice

from ..stages.batch import Batch
from ..stages.read import DEFAULT_MAX_FILE_BYTES, read_files
from .workers import AHEAD, decode_in_workers

CHUNK = 8  # files per task: fewer round trips, still fine-grained


def read_and_decode(decoder, photos, max_file_bytes=DEFAULT_MAX_FILE_BYTES):
    """A Batch of Decoded for ``photos``, with the files that could not be read or decoded."""
    read = read_files(photos, max_file_bytes)
    decoded = decoder(read.items)
    return Batch(decoded.items, read.skipped + decoded.skipped)


def decode_in_order(files, decoder, workers, threads, times, max_file_bytes=DEFAULT_MAX_FILE_BYTES):
    """A Batch for each chunk of ``files``, in order.

    ``workers``: processes (or with ``threads``, threads) that decode ahead;
    0 decodes in this process as the batches are asked for. Files over
    ``max_file_bytes`` are skipped unread.
    """
    job = partial(read_and_decode, decoder, max_file_bytes=max_file_bytes)
    chunks = [files[i:i + CHUNK] for i in range(0, len(files), CHUNK)]
    if workers == 0:
        return (times.call("decode", job, chunk) for chunk in chunks)
    if threads:
        return _in_threads(job, chunks, workers, times)
    return decode_in_workers(job, chunks, workers, times)


def _in_threads(job, chunks, workers, times):
    pool = ThreadPoolExecutor(workers, thread_name_prefix="read")
    try:
        upcoming = iter(chunks)
        window = deque(pool.submit(job, chunk) for chunk in islice(upcoming, AHEAD * workers))
        while window:
            head = window.popleft()
            chunk = next(upcoming, None)
            if chunk is not None:
                window.append(pool.submit(job, chunk))
            yield times.call("wait_for_decode", head.result)
    finally:
        pool.shutdown(cancel_futures=True)
