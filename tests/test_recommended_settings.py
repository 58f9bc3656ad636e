"""The recommended settings say one thing everywhere: the table in README.md and docs/choosing_settings.md,
the defaults of the core and of every adapter, the snippets and the examples. A change to one of them
fails here until the others follow."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import music_ssl
from music_ssl import MUSICLoss, MUSICOptions, MUSICProjectionHead, music_loss, music_loss_terms

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "README.md", ROOT / "docs" / "choosing_settings.md")
MARK = "<!-- recommended settings"
EXAMPLES = sorted((ROOT / "integrations" / "lightly" / "examples").glob("*/music.py"))
# Pages whose snippets build a head for the reader to copy (the authors' recipes are described elsewhere).
SNIPPET_PAGES = (
    ROOT / "README.md",
    *(ROOT / "docs" / name for name in ("index.md", "integrations.md", "stable_pretraining.md", "codes.md")),
)


def table(page: Path) -> dict[str, str]:
    """The recommended-settings table that follows the marker on ``page``: setting -> recommended."""
    text = page.read_text()
    assert MARK in text, f"{page.name} has no recommended-settings table"
    rows = {}
    for line in text.split(MARK, 1)[1].splitlines()[1:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in ("setting", "---"):
            continue
        rows[cells[0].strip("`")] = cells[1]
    return rows


def number(cell: str) -> float:
    """The first backticked number of a cell."""
    found = re.search(r"`([0-9.]+)`", cell)
    assert found, cell
    return float(found.group(1))


@pytest.fixture(scope="module")
def recommended() -> dict[str, str]:
    readme, settings_page = (table(page) for page in PAGES)
    assert readme == settings_page, "README.md and docs/choosing_settings.md recommend different settings"
    assert set(readme) == {"temperature", "segment_dim", "num_layers", "optimizer", "views"}
    return readme


def _default(function, name: str):
    return inspect.signature(function).parameters[name].default


def test_the_temperature_is_the_default_of_the_core_and_every_adapter(recommended) -> None:
    temperature = number(recommended["temperature"])
    defaults = {
        "MUSICLoss": _default(MUSICLoss.__init__, "temperature"),
        "music_loss": _default(music_loss, "temperature"),
        "music_loss_terms": _default(music_loss_terms, "temperature"),
        "MUSICOptions": MUSICOptions().temperature,
        "head.loss()": MUSICProjectionHead(8, 16, 16, segment_dim=4).loss().temperature,
        "segment_probabilities": _default(music_ssl.segment_probabilities, "temperature"),
        "head.segment_probabilities": _default(MUSICProjectionHead.segment_probabilities, "temperature"),
    }
    from music_ssl.integrations.solo_learn import losses, method_kwargs

    defaults["solo-learn music_loss_func"] = _default(losses.music_loss_func, "temperature")
    defaults["solo-learn method defaults"] = method_kwargs.DEFAULTS["temperature"]
    for host in ("lightly", "stable_pretraining"):
        adapter = pytest.importorskip(
            f"music_ssl.integrations.{host}", reason=f"pip install music-ssl[{host}]"
        )
        defaults[f"{host} MUSICLoss"] = adapter.MUSICLoss().temperature
    assert {name: value for name, value in defaults.items() if value != temperature} == {}


def test_the_head_depth_is_the_heads_default_and_every_snippet_and_example_uses_it(recommended) -> None:
    layers = int(number(recommended["num_layers"]))
    assert _default(MUSICProjectionHead.__init__, "num_layers") == layers
    for path in (*SNIPPET_PAGES, *EXAMPLES):
        for call in re.findall(r"MUSICProjectionHead\(([^)]*)\)", path.read_text()):
            given = re.search(r"num_layers=(\d+)", call)
            assert given is None or int(given.group(1)) == layers, f"{path.name}: MUSICProjectionHead({call})"


def test_snippets_and_examples_build_the_loss_from_the_head(recommended) -> None:
    """A snippet that builds a head writes segment_dim once: the loss comes from ``head.loss()``."""
    for path in (*SNIPPET_PAGES, *EXAMPLES):
        text = path.read_text()
        blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE) or [text]
        for block in blocks:
            if "MUSICProjectionHead(" in block:
                assert not re.search(r"MUSICLoss\(\s*segment_dim", block), f"{path.name}: {block[:300]}"


def _best_segment_dims() -> dict[int, int]:
    """Width -> best segment_dim, from the table of the music_options search on choosing_settings.md."""
    best = {}
    for widths, choice in re.findall(r"^\| ([\d, ]+) \| (\d+) \(", PAGES[1].read_text(), flags=re.MULTILINE):
        for width in widths.split(","):
            best[int(width)] = int(choice)
    return best


def test_the_segment_rule_gives_the_measured_best_segment_size_of_every_width(recommended) -> None:
    rule = recommended["segment_dim"]
    assert rule == "`output_dim / 16` up to 512 wide, then `32`", rule
    best = _best_segment_dims()
    assert set(best) >= {128, 256, 512, 1024, 2048, 4096}
    for width, segment_dim in best.items():
        assert (width // 16 if width <= 512 else 32) == segment_dim, width


def _sgd_learning_rates(path: Path) -> list[float]:
    rates = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "SGD":
            rates += [
                k.value.value for k in node.keywords if k.arg == "lr" and isinstance(k.value, ast.Constant)
            ]
    return rates


def test_the_examples_train_with_the_recommended_optimizer_views_and_head(recommended) -> None:
    lr = number(recommended["optimizer"])
    assert EXAMPLES
    for path in EXAMPLES:
        text = path.read_text()
        assert _sgd_learning_rates(path) == [lr], path
        assert re.search(r'"--batch-size", type=int, default=256', text), path  # lr is per 256 images
        assert re.search(r'"--n-local-views", type=int, default=0', text), path  # two views
        assert "projection_head.loss(" in text, path
    assert int(number(recommended["views"])) == 2
