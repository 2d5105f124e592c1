"""Exact inner-product search over a bundle's stored vectors with torch, on a GPU.

pip's faiss-gpu wheels do not load next to CUDA 13 torch, so with faiss-cpu
this is how a GPU searches: the vectors live on the device in fp16 and each
search is a matmul and a top-k per row block. It is exact for any index type
(up to the fp16 rounding of the vectors; ``Searcher.search`` re-scores the
results in float32). ``search.index.ann`` imports this module only when a GPU is
wanted, so torch stays out of processes that never search on one.
"""

import numpy as np
import torch

from ..encoding.device import cuda_missing
from ..errors import InvalidArgumentError

COPY_ROWS = 262_144  # rows moved to the device at a time: the host never holds a second full copy
SCRATCH_BYTES = 2**30  # bound on the [queries, rows] score block of one matmul
QUERY_BATCH = 1024  # queries per pass, bounding the [queries, k] running best too
MEMORY_FRACTION = 0.5  # of the device's free memory the vectors may take, leaving room for the model and scratch


class TorchExactIndex:
    """The vectors of sorted ``ids`` on a torch ``device``, searched exactly like a faiss flat index.

    Searches allocate their own tensors, so concurrent callers need no lock.
    """

    def __init__(self, ids, vectors, device="cuda", scratch_bytes=SCRATCH_BYTES, dtype=None):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.scratch_bytes = scratch_bytes
        self.vectors = torch.empty(tuple(vectors.shape), dtype=dtype or storage_dtype(device), device=device)
        self.device = self.vectors.device  # "cuda" resolved to one GPU, whichever thread searches
        for start in range(0, len(vectors), COPY_ROWS):
            # a writable float32 copy of one chunk: a memory-mapped bundle is read-only
            chunk = np.array(vectors[start:start + COPY_ROWS], dtype=np.float32)
            self.vectors[start:start + len(chunk)] = torch.from_numpy(chunk)

    @property
    def ntotal(self):
        return len(self.ids)

    def search(self, queries, k):
        """``(scores, ids)`` of the ``k`` best rows per query, best first (faiss's convention, ``k <= ntotal``)."""
        queries = np.asarray(queries, dtype=np.float32)
        k = min(int(k), self.ntotal)
        scores = np.zeros((len(queries), k), np.float32)
        rows = np.zeros((len(queries), k), np.int64)
        if k <= 0:
            return scores, rows
        with torch.inference_mode():
            for i in range(0, len(queries), QUERY_BATCH):
                s, r = self._search_batch(torch.tensor(queries[i:i + QUERY_BATCH]), k)
                scores[i:i + len(s)], rows[i:i + len(r)] = s.float().cpu().numpy(), r.cpu().numpy()
        return scores, self.ids[rows]

    def _search_batch(self, queries, k):
        queries = queries.to(self.device)
        coarse = queries.to(self.vectors.dtype)
        # fp16 scores (3 digits) pick twice the candidates, which float32 then orders: fp16
        # output halves the traffic of the matmul and of the top-k, most of a search's time
        want = k if self.vectors.dtype == torch.float32 else min(self.ntotal, 2 * k + 32)
        block = max(1, self.scratch_bytes // (len(queries) * self.vectors.element_size()))
        best_scores = best_rows = None
        for start in range(0, self.ntotal, block):
            scores = coarse @ self.vectors[start:start + block].T
            top_scores, top_rows = torch.topk(scores, min(want, scores.shape[1]), dim=1)
            top_rows += start
            if best_scores is not None:  # merge with the best of the blocks before
                top_scores, top_rows = torch.cat([best_scores, top_scores], 1), torch.cat([best_rows, top_rows], 1)
                top_scores, pick = torch.topk(top_scores, min(want, top_scores.shape[1]), dim=1)
                top_rows = torch.gather(top_rows, 1, pick)
            best_scores, best_rows = top_scores, top_rows
        if want == k:
            return best_scores, best_rows
        return self._refine(queries, best_rows, k)

    def _refine(self, queries, rows, k):
        """The ``k`` best of candidate ``rows`` per query by float32 inner product."""
        chunk = max(1, self.scratch_bytes // (rows.shape[1] * self.vectors.shape[1] * 4))
        scores = torch.cat([
            torch.bmm(self.vectors[rows[i:i + chunk]].float(), queries[i:i + chunk, :, None])[:, :, 0]
            for i in range(0, len(rows), chunk)])
        scores, pick = torch.topk(scores, k, dim=1)
        return scores, torch.gather(rows, 1, pick)


def storage_dtype(device):
    # fp16 halves device memory and bandwidth; CPUs lack fast fp16 matmuls
    return torch.float32 if torch.device(device).type == "cpu" else torch.float16


def free_memory(device):
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    from .ann import available_memory

    return available_memory()


def fits(rows, dim, device="cuda"):
    """Whether ``rows`` vectors of ``dim`` fit in ``MEMORY_FRACTION`` of the free memory of ``device``."""
    need = rows * dim * storage_dtype(device).itemsize
    return need <= free_memory(device) * MEMORY_FRACTION


def exact_index(ids, vectors, device="cuda", required=False):
    """A :class:`TorchExactIndex` on ``device``, or None where it cannot be (no CUDA device, too little memory).

    ``required``: raise :class:`InvalidArgumentError` instead of returning None.
    """
    device = torch.device(device)
    if cuda_missing(device):
        _refuse_if(required, "torch sees no CUDA device")
        return None
    rows, dim = vectors.shape
    if fits(rows, dim, device):
        try:
            return TorchExactIndex(ids, vectors, device)
        except torch.cuda.OutOfMemoryError:  # another process took the memory meanwhile
            pass
    _refuse_if(required, f"{rows} vectors of dimension {dim} need more than "
                         f"{MEMORY_FRACTION:.0%} of the free memory of {device}")
    return None


def _refuse_if(required, why):
    if required:
        raise InvalidArgumentError(f"use_gpu=True was asked for, but {why}; open the bundle with "
                                   "use_gpu='auto' (the GPU where there is one) or use_gpu=False")
