"""The Beam preprocessing job: raw logs and an item catalog → validated, split TFRecords.

`preprocess.run` reads the inputs, applies the composite `Preprocess` (`transform`) and writes its
outputs; everything in between is a transform of this package or the plain Python it calls:

* reading: `inputs` (which files, in which format), `formats` (JSONL, CSV, Parquet, compressed),
  `movielens` (the MovieLens releases), `read` (files → chunks of raw records);
* records: `records` (parsing and validating one event or item), `reasons` (why a record is
  rejected), `rejections` (the dead-letter output and its counts);
* the item side (`items`) and the event side (`events`): `history` (each event's history),
  `splits` (train, validation and eval);
* summaries: `vocab`, `stats`, and the CombineFns of `combiners`.

It builds on `pipeline.core` only.
"""

from pipeline.preprocess.preprocess import run
from pipeline.preprocess.transform import Preprocess

__all__ = ["Preprocess", "run"]
