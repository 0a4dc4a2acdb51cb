"""The character-level GRU language model family (`bigmodel-tf train gru-lm`)."""
