"""`tapzone classify`: stream a touch log (CSV or JSONL, maybe gzipped) through the classifier.

The work is I/O: read the input in blocks, group the rows of each stroke, hand complete
strokes to gestures.classify_strokes, write one CSV row per stroke in order of first
appearance. Memory stays bounded at any input size:

- JSONL holds one stroke per line, so each block is classified as it is read.
- CSV rows of different strokes may interleave. A stroke is *complete* once its ``up`` or
  ``cancel`` row has been read, or once ``idle_rows`` lines have gone by without a row of
  it (and at the end of the input). Complete strokes are classified; only open strokes
  stay buffered, and results wait only for earlier strokes that are still open.
- If a row turns up for a stroke that was already classified, or the buffers outgrow
  their budget, the run restarts in *partitioned* mode: rows are hash-partitioned by
  stroke into temporary files, each partition is grouped in memory, and the per-partition
  results are merged back into order of first appearance. Strokes are never split.

Output goes to a temporary file first (next to ``--output``, else in the temp directory)
and reaches its destination only when the run succeeds, so a restart or an error never
leaves half an output behind.

Modules: ``run`` (the entry point), ``_inputs`` (format, gzip, blocks of lines), ``_csv``
and ``_jsonl`` (parsing), ``_stream`` and ``_partition`` (the two CSV modes), ``_grouped``
(classifying grouped rows), ``_output`` and ``_progress`` (what the user sees).
"""

from server.offline._limits import Limits
from server.offline.run import run_classify

__all__ = ["Limits", "run_classify"]
