"""The CNN's benchmark entry."""

from bigmodel_tf.bench.harness import QUICK, Family, Quality, Target
from bigmodel_tf.families.cnn.peer import cnn_peer

ENTRIES = (
    Family(
        "cnn",
        (Quality("test_accuracy", "accuracy", target=">= 0.985"),),
        mfu_target=">= 0.30",
        quick_overrides={
            "model.filters": (8, 16),
            "model.dense_units": 16,
            "model.augment": False,
            **QUICK,
        },
        train_steps=40,
        time_to_accuracy=Target("accuracy", ">= 0.985"),
        peer=cnn_peer,
    ),
)
