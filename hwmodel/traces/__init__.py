"""Recorded expert-selection traces: reader, compact store, adapters, analyses, synthesis.

* :func:`open_batch` reads any trace source (store file, request JSON, subject/benchmark/tree
  folder, ``.tar.gz`` subject archive, list file) into a :class:`TraceStore`;
* :meth:`TraceStore.save` / :meth:`TraceStore.load` write and memory-map the binary store;
* :mod:`hwmodel.traces.adapters` reads the other public formats into the same store;
* :mod:`hwmodel.traces.analysis` computes the statistics of SPEC section 8;
* :mod:`hwmodel.traces.synth` fits a generative model and samples synthetic batches.
"""

from .reader import open_batch, parse_request, request_sources
from .store import ITERATION_CAP, MAX_DECODE_STEPS, STORE_VERSION, TraceError, TraceStore

__all__ = ["ITERATION_CAP", "MAX_DECODE_STEPS", "STORE_VERSION", "TraceError", "TraceStore",
           "open_batch", "parse_request", "request_sources"]
