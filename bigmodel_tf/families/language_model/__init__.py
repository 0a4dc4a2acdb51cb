"""What the character-level language-model families (`gru-lm`, `transformer-lm`) share:
their data, training task, serving side, text generation and benchmark."""
