"""The documentation site builds with warnings as errors, and its API reference renders in a real browser.

The site (mkdocs.yml) is built from the installed package's docstrings, so the suite checks what users
install; the page of the API reference is then opened in headless Chromium and read back as the browser
rendered it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import music_ssl

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip(
    "mkdocstrings_handlers.python", reason="building the docs site needs pip install music-ssl[docs]"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    return out


class Sections(HTMLParser):
    """The text under each element with an id, up to the next id that names a public object."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, list[str]] = {}
        self.current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        anchor = dict(attrs).get("id")
        if anchor and anchor.startswith("music_ssl.") and anchor.count(".") == 1:
            self.current = anchor
            self.text.setdefault(anchor, [])

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.text[self.current].append(data)


def rendered(page: Path) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("opening the site needs Chromium: apt-get install chromium (make test installs it)")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr
    return dom.stdout


def test_every_page_of_docs_is_in_the_site(site: Path) -> None:
    for page in (ROOT / "docs").glob("*.md"):
        name = "" if page.stem == "index" else page.stem
        assert (site / name / "index.html").is_file(), page.name


def test_the_api_page_renders_every_public_name_and_musicloss_signature_and_example(site: Path) -> None:
    parser = Sections()
    parser.feed(rendered(site / "api" / "index.html"))
    assert set(parser.text) >= {f"music_ssl.{name}" for name in music_ssl.__all__}
    loss = " ".join("".join(parser.text["music_ssl.MUSICLoss"]).split())
    for parameter in ("segment_dim", "temperature", "diag_weight", "gather_distributed", "implementation"):
        assert f"{parameter}:" in loss or f"{parameter} =" in loss or f"{parameter}=" in loss, parameter
    assert "loss = loss_fn(z_a, z_b)" in loss
    assert "out = loss_fn.terms(z_a, z_b)" in loss
