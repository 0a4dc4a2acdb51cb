"""results.json and the tables of docs/results.md generated from it."""

import json
from pathlib import Path

import pytest

from bigmodel_tf.bench.results import (
    RESULTS_PAGE,
    TABLES_BEGIN,
    TABLES_END,
    Figure,
    render_tables,
    target_met,
    update_results_page,
    write_results,
)


@pytest.mark.parametrize(
    ("value", "target", "met"),
    [(1.5, ">= 1.5", True), (1.49, ">= 1.5", False), (1.6, "<= 1.60", True), (0.3, "< 0.3", False)],
)
def test_targets_are_checked_with_their_operator(value, target, met):
    assert target_met(value, target) is met
    assert Figure("x", value, "x", "s", target=target).met is met


def test_a_malformed_target_is_refused():
    with pytest.raises(ValueError, match="not '<op> <number>'"):
        target_met(1.0, "about 2")


def test_a_suite_run_again_replaces_only_its_own_figures_of_its_families(tmp_path):
    path = tmp_path / "results.json"
    write_results(
        path,
        [
            Figure("a.one", 1.0, "x", "a", family="cnn"),
            Figure("a.rnn", 1.5, "x", "a", family="gru_lm"),
            Figure("b.one", 2.0, "x", "b", family="cnn"),
        ],
        quick=False,
    )
    results = write_results(
        path, [Figure("a.two", 3.0, "x", "a", target=">= 5", family="cnn")], quick=False
    )
    assert json.loads(path.read_text()) == results
    figures = {f["name"]: f for f in results["figures"]}
    assert set(figures) == {"a.rnn", "b.one", "a.two"}
    assert figures["a.two"]["met"] is False and figures["b.one"]["met"] is None
    assert {"cpu", "cores", "memory_gib"} <= set(results["machine"])
    assert {"tensorflow", "keras", "keras-hub", "ai-edge-litert"} <= set(results["versions"])


def test_tables_show_each_suite_and_the_results_page_block_is_replaced(tmp_path):
    results = write_results(
        tmp_path / "results.json",
        [
            Figure("q.loss", 1.5, "nats/char", "quality", note="max |a - b|"),
            Figure("t.ratio", 1.234, "x", "train", target=">= 1.5", spread=[1.1, 1.3], command="c"),
        ],
        quick=False,
    )
    tables = render_tables(results)
    assert tables.index("**train**") < tables.index("**quality**")  # the order suites run in
    assert "| `t.ratio` | 1.23 x | [1.1, 1.3] | >= 1.5 | **no** |  | `c` |" in tables
    assert "| max \\|a - b\\| |" in tables  # a bar inside a note stays inside its cell
    page = tmp_path / "results.md"
    page.write_text(f"# x\n\nbefore\n\n{TABLES_BEGIN}\nold\n{TABLES_END}\n\nafter\n")
    update_results_page(page, tables)
    text = page.read_text()
    assert "old" not in text and tables in text
    assert text.startswith("# x\n\nbefore\n\n") and text.endswith(f"{TABLES_END}\n\nafter\n")
    page.write_text("no markers")
    with pytest.raises(ValueError, match="no <!-- bench:begin"):
        update_results_page(page, tables)


def test_the_results_page_has_one_generated_block_matching_results_json():
    """docs/results.md holds the tables of benchmarks/results.json as the bench renders them."""
    root = Path(__file__).resolve().parents[2]
    text = (root / RESULTS_PAGE).read_text()
    assert text.count(TABLES_BEGIN) == 1 and text.count(TABLES_END) == 1
    block = text.split(TABLES_BEGIN, 1)[1].split(TABLES_END, 1)[0]
    results = json.loads((root / "benchmarks" / "results.json").read_text())
    assert block == f"\n{render_tables(results)}\n"
