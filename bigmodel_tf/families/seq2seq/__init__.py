"""The Seq2Seq grapheme-to-phoneme family (`bigmodel-tf train seq2seq`)."""
