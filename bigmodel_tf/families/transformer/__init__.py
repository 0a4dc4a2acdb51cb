"""The Transformer families: the text classifier (`transformer`), its masked-language-model
pretraining (`transformer-mlm`) and the character-level causal language model
(`transformer-lm`), which share one backbone."""
