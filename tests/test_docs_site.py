"""The documentation site builds with warnings as errors and works where it is opened: from disk.

The site (mkdocs.yml) is built from the installed package's docstrings, so the suite checks what users
install. Every page of the built site is then read twice: its HTML, for links and resources that lead
nowhere or outside the site, and in headless Chromium opened from its file:// address, as a reader who
opens the built site from disk sees it: no console error, no failed request, no broken image.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import music_ssl

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip(
    "mkdocstrings_handlers.python", reason="building the docs site needs pip install music-ssl[docs]"
)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr
    return out


class Links(HTMLParser):
    """Every link and resource of a page, and the ids it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (tag, address)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if named.get("id"):
            self.ids.add(named["id"])  # type: ignore[arg-type]
        address = named.get("src") if tag in ("img", "script", "iframe") else named.get("href")
        if address is not None and tag in ("a", "img", "script", "link", "iframe"):
            self.links.append((tag, address))


def _parsed(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _pages(site: Path) -> list[Path]:
    """Every page a reader reaches; 404.html, which only a web server shows (at any address, so its links
    start at the server's root), is not one of them from disk."""
    return sorted(page for page in site.rglob("*.html") if page != site / "404.html")


def test_every_page_of_docs_and_every_results_table_is_a_page_of_the_site(site: Path) -> None:
    for page in [*(ROOT / "docs").glob("*.md"), *(ROOT / "docs" / "results").rglob("*.md")]:
        built = site / page.relative_to(ROOT / "docs").with_suffix(".html")
        assert built.is_file(), page


def test_every_link_and_resource_stays_in_the_site_and_reaches_a_file_and_its_anchor(site: Path) -> None:
    """A link to a folder would open a bare listing from disk; a resource from another host would fail
    offline. Links to other sites (a, external URLs) are the only addresses outside the site."""
    pages = {page: _parsed(page) for page in _pages(site)}
    broken = []
    for page, parsed in pages.items():
        for tag, address in parsed.links:
            parts = urlsplit(address)
            if parts.scheme in ("http", "https", "mailto"):
                if tag != "a":
                    broken.append(f"{page.relative_to(site)}: <{tag}> loads {address} from outside the site")
                continue
            if parts.scheme or address.startswith("//"):
                broken.append(f"{page.relative_to(site)}: {address}")
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {address} reaches no file")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parsed(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {address} reaches no heading")
    assert not broken, "\n".join(broken)


@contextlib.contextmanager
def _page():
    """A page of headless Chromium, driven by playwright."""
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="opening the site needs playwright: pip install music-ssl[docs]"
    )
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("opening the site needs Chromium: apt-get install chromium (make test installs it)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_every_page_opened_from_disk_loads_without_an_error_and_shows_its_images(site: Path) -> None:
    problems: list[str] = []
    with _page() as page:
        current = {"page": ""}
        page.on(
            "console",
            lambda m: m.type == "error" and problems.append(f"{current['page']}: console: {m.text}"),
        )
        page.on("pageerror", lambda e: problems.append(f"{current['page']}: {e}"))
        # A request the next page's navigation cut short (the favicon, which browsers fetch after "load")
        # fails with ERR_ABORTED; a missing file fails otherwise (ERR_FILE_NOT_FOUND) and is a problem.
        page.on(
            "requestfailed",
            lambda r: (
                r.failure != "net::ERR_ABORTED"
                and problems.append(f"{current['page']}: failed to load {r.url} ({r.failure})")
            ),
        )
        for built in _pages(site):
            current["page"] = str(built.relative_to(site))
            page.goto(built.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth > 0])"
            )
            problems += [f"{current['page']}: broken image {src}" for src, shown in images if not shown]
    assert not problems, "\n".join(problems)


def test_search_finds_pages_when_the_site_is_opened_from_disk(site: Path) -> None:
    with _page() as page:
        page.goto((site / "index.html").as_uri(), wait_until="load")
        page.fill("input[name=query]", "temperature")
        page.wait_for_selector(".md-search-result__item", timeout=20_000)
        titles = page.eval_on_selector_all(".md-search-result__item", "els => els.map(e => e.innerText)")
    assert any("temperature" in title.lower() for title in titles), titles


def test_code_is_highlighted_in_the_built_html_without_a_script(site: Path) -> None:
    """Highlighting is done when the site is built, so pages need no script from anywhere to show it."""
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'class="highlight"' in home and '<span class="kn">import</span>' in home


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


def test_the_api_page_renders_every_public_name_and_musicloss_signature_and_example(site: Path) -> None:
    with _page() as page:
        page.goto((site / "api.html").as_uri(), wait_until="load")
        rendered = page.content()
    parser = Sections()
    parser.feed(rendered)
    assert set(parser.text) >= {f"music_ssl.{name}" for name in music_ssl.__all__}
    loss = " ".join("".join(parser.text["music_ssl.MUSICLoss"]).split())
    for parameter in ("segment_dim", "temperature", "diag_weight", "gather_distributed", "implementation"):
        assert f"{parameter}:" in loss or f"{parameter} =" in loss or f"{parameter}=" in loss, parameter
    assert "loss = loss_fn(z_a, z_b)" in loss
    assert "out = loss_fn.terms(z_a, z_b)" in loss
