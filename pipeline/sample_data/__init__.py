"""A deterministic synthetic marketplace: the project's embedded demo data (`recsys sample-data`).

`generate` builds an item catalog and an interaction log in memory from a `SampleDataConfig`;
`write_sample_data` writes them as `items.<ext>` and `events.<ext>` (JSONL, CSV or Parquet),
which `recsys preprocess` then reads like any other input. The data is meant to behave like a
real marketplace log and to be learnable:

* `catalog`: items in up to 20 categories and four latent styles each, with titles and
  descriptions that state the item's kind, style, material and use, from the words of
  `words.json` (`vocabulary`), Zipf-like popularity, and a share of items added late (cold start);
* `sessions`: users who prefer some categories and styles, in sessions through a view → click →
  add_to_cart → purchase funnel;
* `writers`: the files, each written atomically.

Everything derives from `numpy.random.default_rng(cfg.seed)`, so the same config gives
byte-identical files. The package builds on `pipeline.core` only.
"""

from pipeline.sample_data.catalog import LOG_START
from pipeline.sample_data.sessions import EVENT_TYPES, SampleData, generate
from pipeline.sample_data.writers import FORMATS, write_sample_data

__all__ = ["EVENT_TYPES", "FORMATS", "LOG_START", "SampleData", "generate", "write_sample_data"]
