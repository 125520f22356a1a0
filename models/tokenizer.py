"""In-graph BERT tokenization with TF Text, matching Hugging Face's BertTokenizerFast.

Clients send raw strings; the served SavedModel tokenizes them with ops stock TF Serving links
(core TensorFlow and TF Text). The normalization reproduces the Hugging Face BERT normalizer step
by step instead of TF Text's built-in one, which applies NFKC case folding (it turns "ﬁ" into
"fi" and full-width letters into ASCII, where BERT's own tokenizer does not):

1. tabs and line breaks become spaces; other control and format characters are removed;
2. (uncased checkpoints) capital sigma becomes σ, then characters are lower-cased one by one,
   decomposed (NFD) and stripped of combining accents;
3. FastBertTokenizer splits on whitespace, punctuation and CJK characters and applies WordPiece;
4. [CLS] and [SEP] are added, the sequence is truncated to `max_length`, padded with [PAD] to the
   longest sequence of the batch, and an attention mask marks the real tokens.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

__all__ = ["BertTokenizerLayer"]


class BertTokenizerLayer(tf.keras.layers.Layer):
    """Raw strings `[batch]` → `(input_ids, attention_mask)`, both int32 `[batch, length]`.

    Args:
      vocabulary: WordPiece tokens in id order (the checkpoint's vocab.txt).
      do_lower_case: The checkpoint's lowercasing rule.
      max_length: Longest sequence, [CLS] and [SEP] included.
    """

    def __init__(self, vocabulary: list[str], do_lower_case: bool, max_length: int = 128, **kwargs):
        super().__init__(**kwargs)
        if max_length < 3:
            raise ValueError(f"max_length must be at least 3 (got {max_length})")
        missing = [t for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]") if t not in vocabulary]
        if missing:
            raise ValueError(f"vocabulary lacks special tokens {missing}")
        self.vocabulary = list(vocabulary)
        self.do_lower_case = bool(do_lower_case)
        self.max_length = int(max_length)
        self._cls = vocabulary.index("[CLS]")
        self._sep = vocabulary.index("[SEP]")
        self._pad = vocabulary.index("[PAD]")
        self._tokenizer = tf_text.FastBertTokenizer(
            vocab=self.vocabulary,
            token_out_type=tf.int32,
            unknown_token="[UNK]",
            lower_case_nfd_strip_accents=False,
        )

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """Step 1 and 2 of the module docstring."""
        texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
        texts = tf.strings.regex_replace(texts, r"[\p{Cc}\p{Cf}\x{FFFD}]", "")
        if self.do_lower_case:
            # Lower-case per character like BERT's tokenizer: no Greek final-sigma rule.
            texts = tf.strings.regex_replace(texts, "Σ", "σ")
            texts = tf.strings.lower(texts, encoding="utf-8")
            texts = tf_text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        return texts

    def token_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """WordPiece ids without special tokens, `[batch, (tokens)]`, not truncated."""
        return self._tokenizer.tokenize(self.normalize(texts)).merge_dims(1, -1)

    def call(self, texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
        ids = self.token_ids(texts)[:, : self.max_length - 2]
        batch = ids.nrows()
        cls = tf.fill([batch, 1], self._cls)
        sep = tf.fill([batch, 1], self._sep)
        ids = tf.concat([cls, ids, sep], axis=1)
        input_ids = ids.to_tensor(default_value=self._pad)
        mask = tf.ones_like(ids).to_tensor(default_value=0)
        return input_ids, mask

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "do_lower_case": self.do_lower_case,
            "max_length": self.max_length,
        }
