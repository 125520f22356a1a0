"""In-graph BERT tokenization with TF Text, matching Hugging Face's BertTokenizerFast.

Clients send raw strings; the served SavedModel tokenizes them with ops stock TF Serving links
(core TensorFlow and TF Text). The normalization reproduces the Hugging Face BERT normalizer step
by step instead of TF Text's built-in one, which applies NFKC case folding (it turns "ﬁ" into
"fi" and full-width letters into ASCII, where BERT's own tokenizer does not):

1. tabs and line breaks become spaces; other control, format and private-use characters are
   removed;
2. (uncased checkpoints) capital sigma becomes σ, then characters are lower-cased one by one,
   decomposed (NFD) and stripped of combining accents;
3. FastBertTokenizer splits on whitespace, punctuation and CJK characters and applies WordPiece;
4. [CLS] and [SEP] are added, the sequence is truncated to `max_length`, padded with [PAD] to the
   longest sequence of the batch, and an attention mask marks the real tokens.

BERT's WordPiece gives up on words over 100 characters (they become [UNK]), while TF Text limits
words by UTF-8 bytes. So the normalization replaces words over 100 characters by one unknown
character, and the byte limit is set high enough (400) for any word of up to 100 characters.

One deliberate difference remains: text that spells a special token ("[SEP]", "[MASK]") is
ordinary text here, where BertTokenizerFast turns it into the special token, so item
descriptions and queries cannot inject structure.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer

__all__ = ["BertTokenizerLayer"]

_MAX_WORD_CHARS = 100
# Replaces a word BERT would not look up. Private use, so removed from the input before, and absent
# from BERT vocabularies: it tokenizes to [UNK].
_UNKNOWN_CHAR = "\ue000"


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
        self._words = BasicTokenizer(lower_case=False, normalization_form=None)
        self._tokenizer = tf_text.FastBertTokenizer(
            vocab=self.vocabulary,
            token_out_type=tf.int32,
            unknown_token="[UNK]",
            lower_case_nfd_strip_accents=False,
            # BERT gives up on words over 100 characters; TF Text counts bytes. 4 bytes per
            # character keeps long words of any script; see the module docstring.
            max_bytes_per_word=4 * _MAX_WORD_CHARS,
        )

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """Step 1 and 2 of the module docstring."""
        texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
        texts = tf.strings.regex_replace(texts, r"[\p{Cc}\p{Cf}\p{Co}\x{FFFD}]", "")
        if self.do_lower_case:
            # Lower-case per character like BERT's tokenizer: no Greek final-sigma rule.
            texts = tf.strings.regex_replace(texts, "Σ", "σ")
            texts = tf.strings.lower(texts, encoding="utf-8")
            texts = tf_text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        # A word over 100 characters is [UNK] for BERT. Only a text with a run of 101 non-space
        # characters can hold one, so the word split runs only for batches that have such text.
        maybe_long = tf.strings.regex_full_match(texts, rf"(?s).*\S{{{_MAX_WORD_CHARS + 1}}}.*")
        return tf.cond(
            tf.reduce_any(maybe_long),
            lambda: self._replace_long_words(texts),
            lambda: texts,
        )

    def _replace_long_words(self, texts: tf.Tensor) -> tf.Tensor:
        # The words as BERT's basic tokenizer splits them (whitespace, punctuation, CJK), joined
        # again by spaces: the WordPiece tokenizer splits the result into the same words.
        words = self._words.tokenize(texts)
        words = tf.ragged.map_flat_values(
            lambda w: tf.where(
                tf.strings.length(w, unit="UTF8_CHAR") > _MAX_WORD_CHARS, _UNKNOWN_CHAR, w
            ),
            words,
        )
        return tf.strings.reduce_join(words, axis=1, separator=" ")

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
