"""TensorBoard for a run directory, bound to the loopback interface."""

from __future__ import annotations

from pathlib import Path

from bigmodel_tf.errors import UserError


def start_tensorboard(run_dir: Path | str, port: int = 6006) -> str:
    """Starts TensorBoard on 127.0.0.1 in a background thread; returns its URL.

    Args:
        run_dir: path. A run directory (its `logs/` are served) or any folder of event files.
        port: int. Port to listen on; 0 picks a free one. Defaults to 6006.
    """
    from tensorboard import program

    run_dir = Path(run_dir)
    logdir = run_dir / "logs" if (run_dir / "logs").is_dir() else run_dir
    if not logdir.is_dir():
        raise UserError(f"{run_dir} does not exist")
    board = program.TensorBoard()
    board.configure(logdir=str(logdir), host="127.0.0.1", port=port)
    try:
        return board.launch()
    except program.TensorBoardServerException as e:
        raise UserError(f"TensorBoard could not start on 127.0.0.1:{port}: {e.msg}") from None
