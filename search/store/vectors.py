"""A bundle's vectors, read from their ``.npy`` file with ``pread`` through one open descriptor.

Not memory-mapped: a mapped file that is truncated under a running process
(``cp -r`` over a bundle, a disk that fills) kills the process with SIGBUS on
the next read of a lost page. Read with ``pread``, a short read is an error
the server reports, and a file moved or deleted after opening is still read
through the descriptor. The page cache still holds the hot rows, so memory
stays file-backed, not the process's own, at any collection size.

Gathering scattered rows costs a system call per run of rows, so a bundle
whose vectors fit comfortably in memory reads them all once instead
(:func:`open_vectors`); either way a truncation cannot fault the process.

Rows may be stored as float32 or float16 (half the disk and cache for very
large bundles); they are always returned as float32.
"""

import os

import numpy as np

from ..errors import BundleError, InvalidArgumentError

DTYPES = (np.dtype("<f4"), np.dtype("<f2"))
MODES = ("auto", "memory", "file")
MEMORY_SHARE = 8  # "auto" reads vectors into memory when they take at most 1/8 of the memory available


def open_vectors(path, mode="auto", available=None):
    """The vectors at ``path``: a float32 array in memory, or a :class:`VectorFile` that reads rows when asked.

    ``mode``: ``memory``, ``file``, or ``auto`` (memory when the rows as float32
    take at most 1/:data:`MEMORY_SHARE` of ``available`` bytes, by default the
    memory available now).
    """
    if mode not in MODES:
        raise InvalidArgumentError(f"unknown vectors mode {mode!r}; choose one of {', '.join(MODES)}")
    vectors = VectorFile(path)
    if mode == "auto":
        from ..index.ann import available_memory

        float32_bytes = vectors.shape[0] * vectors.shape[1] * 4
        mode = "memory" if float32_bytes * MEMORY_SHARE <= (available or available_memory()) else "file"
    if mode == "file":
        return vectors
    try:
        return vectors[:]
    finally:
        vectors.close()


class VectorFile:
    """Array-like ``[rows, dim]`` float32 view of a vectors file: ``len``, ``shape``, and
    ``vf[i]``, ``vf[a:b]``, ``vf[int array]``, each read when asked."""

    def __init__(self, path):
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        try:
            with open(self._fd, "rb", closefd=False) as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(f)
                self._offset = f.tell()
            if fortran or len(shape) != 2 or dtype not in DTYPES:
                raise BundleError(f"{path} is not a C-ordered 2-D array of float32 or float16 ({dtype}, {shape})")
            self.shape, self.stored_dtype = tuple(shape), dtype
            self._row_bytes = shape[1] * dtype.itemsize
            self.check()
        except (ValueError, OSError) as e:
            os.close(self._fd)
            raise BundleError(f"cannot read the vectors file {path}: {e}") from e
        except BaseException:
            os.close(self._fd)
            raise

    dtype = np.dtype(np.float32)

    def __len__(self):
        return self.shape[0]

    @property
    def nbytes(self):
        return self.shape[0] * self._row_bytes

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            row = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= row < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} vectors")
            return self._read(row, 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self.rows(np.arange(start, stop, step))
            return self._read(start, max(0, stop - start))
        return self.rows(key)

    def __array__(self, dtype=None, copy=None):
        whole = self._read(0, len(self))
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def rows(self, rows):
        """``float32 [len(rows), dim]`` of the given rows, in their order; runs of rows are read at once."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) == 0:
            return np.empty((0, self.shape[1]), np.float32)
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"a row is out of range for {len(self)} vectors")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        # one pread per run of consecutive rows, straight into its place in the sorted block
        starts = np.flatnonzero(np.diff(ordered, prepend=ordered[0] - 2) != 1).tolist()
        block = np.empty((len(rows), self.shape[1]), self.stored_dtype)
        fd, offset, row_bytes, first_rows = self._fd, self._offset, self._row_bytes, ordered[starts].tolist()
        for begin, end, first in zip(starts, starts[1:] + [len(ordered)], first_rows):
            if os.preadv(fd, [block[begin:end]], offset + first * row_bytes) != (end - begin) * row_bytes:
                raise self._truncated()
        out = block if block.dtype == np.float32 else block.astype(np.float32)
        if np.any(order != np.arange(len(order))):  # asked for out of order (or with repeats): back to that order
            unsorted = np.empty_like(out)
            unsorted[order] = out
            out = unsorted
        return out

    def _read(self, first, count):
        block = np.empty((count, self.shape[1]), self.stored_dtype)
        got = os.preadv(self._fd, [block], self._offset + first * self._row_bytes) if count else 0
        if got != block.nbytes:
            raise self._truncated()
        return block if block.dtype == np.float32 else block.astype(np.float32)

    def check(self):
        """Raise :class:`BundleError` unless the open file still has the size its header says."""
        expected = self._offset + self.shape[0] * self._row_bytes
        actual = os.fstat(self._fd).st_size
        if actual != expected:
            raise BundleError(f"{self.path} has {actual} bytes where its header says {expected}: "
                              "damaged or being written")

    def _truncated(self):
        return BundleError(f"{self.path} is shorter than when it was opened: it was truncated or overwritten; "
                           "rebuild the index (python -m indexer build) and the server picks up the new one")

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except (OSError, AttributeError):
            pass
