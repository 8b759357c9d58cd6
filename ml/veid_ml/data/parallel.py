"""Parallel, order-preserving sample generation with a progress bar.

Workers are started with 'spawn' (never fork): a training process may already hold TensorFlow's thread pools, and forking
a multi-threaded process can deadlock. Because each sample is a pure function of its index, the result does not depend on
the number of workers or how indices are chunked.
"""

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def _run_chunk(fn, indices, kwargs):
    try:  # OpenCV's own pool would oversubscribe the cores the other workers use
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    return [fn(i, **kwargs) for i in indices]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def generate(fn, n: int, workers: int | None = None, desc: str = "", chunk: int = 64, **kwargs) -> list:
    """[fn(i, **kwargs) for i in range(n)], computed in worker processes, in index order.

    fn must be a module-level function (picklable). Small jobs run in-process, where worker start-up would dominate.
    """
    workers = default_workers() if workers is None else workers
    chunks = [range(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    bar = Progress(n, desc)
    out = []
    if workers <= 1 or n <= chunk:
        for c in chunks:
            out.extend(_run_chunk(fn, c, kwargs))
            bar.update(len(out))
        return out
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for part in pool.map(_run_chunk, [fn] * len(chunks), chunks, [kwargs] * len(chunks)):
            out.extend(part)
            bar.update(len(out))
    return out


class Progress:
    """Keras' progress bar on a terminal when Keras is already loaded (training); in a log, one line when done (unless
    the caller prints its own, done_line=False); silent for data tools that never load Keras."""

    def __init__(self, total, desc, unit: str = "sample", done_line: bool = True):
        self._bar, self._desc, self._total, self._unit, self._started = None, None, total, unit, time.perf_counter()
        if desc and "keras" in sys.modules:
            self._desc = desc if done_line else None
            if sys.stderr.isatty():
                import keras

                print(desc, file=sys.stderr)
                self._bar = keras.utils.Progbar(total, unit_name=unit)

    def update(self, done):
        if self._bar is not None:
            self._bar.update(done)
        elif self._desc and done == self._total:
            print(f"{self._desc}: {done} {self._unit}s in {time.perf_counter() - self._started:.0f} s", file=sys.stderr,
                  flush=True)
