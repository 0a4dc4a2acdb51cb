"""bigmodel_tf: classic deep-learning architectures from real data to deployed artefact."""

__version__ = "0.1.0"
