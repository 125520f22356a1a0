"""The text-embedding job and the BERT text encoder it runs.

* `embed_items`: `recsys embed-items`, a Beam job that encodes each catalog item's text with
  `RunInference`, incrementally (unchanged texts keep their vectors);
* `text_inference`: the encoder as a RunInference model handler;
* `text_encoder`: the encoder itself, one Keras layer (raw strings in, one L2-normalized vector
  out) that this job and the exported SavedModel (`serving`, for free-text queries) both use,
  so an item's text and a query give vectors of the same space;
* `tokenizer`: BERT tokenization inside the graph with TF Text, as Hugging Face's;
* `checkpoint`: finding, validating and loading BERT checkpoints offline.

It builds on `pipeline.core` only; `serving` imports the encoder from here. This
`__init__` re-exports nothing: `text_encoder` and `tokenizer` load TensorFlow, which a Beam job
that only plans its work should not pay for.
"""
