"""One thread per call for the numpy and faiss work of requests, so concurrent requests run side by side.

Each request scores its candidates and the relevance sample with small numpy
products, and the shared index search (``web.coalesce``) runs faiss. With
threaded calls, 16 concurrent requests queued inside OpenBLAS (it runs one
threaded call at a time), and faiss's OpenMP team waited for the cores that
the encoder held: both took most of the server's time at concurrency 16
(``benchmarks/RESULTS.md``, "Serving at concurrency 16"). Requests already
use the cores in parallel, and the model keeps torch's own threads.
"""

import functools

import faiss
from threadpoolctl import ThreadpoolController


def limit_process():
    """numpy's OpenBLAS to one thread per call, for every thread of the process (faiss's OpenBLAS takes
    its thread count from OpenMP: :func:`limit_this_thread`)."""
    ThreadpoolController().limit(limits=1, user_api="blas")


def limit_this_thread():
    """faiss's OpenMP team to one thread for calls from this thread: OpenMP keeps that setting per thread,
    so it is made in every thread that calls faiss (the thread pool's, the index search's)."""
    faiss.omp_set_num_threads(1)


def in_one_thread(call):
    """``call``, with faiss limited to one thread in whichever thread runs it."""
    @functools.wraps(call)
    def run(*args, **kwargs):
        limit_this_thread()
        return call(*args, **kwargs)
    return run
