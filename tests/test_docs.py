"""Every snippet of README.md and docs/*.md runs, so none goes stale.

Python blocks are executed as written (the pages that need stand-ins for a reader's model are run by
their adapters' own tests, named below). Shell blocks are checked command by command against what the
repository provides: make targets exist, our modules and scripts answer --help, pip extras exist,
solo-learn config names are packaged, shell scripts parse. A command of a kind this file does not know
fails the test, so a new snippet gets a check with it. Every relative link of every Markdown file
reaches a file that exists and, with a fragment, a heading of that page.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Python snippets that use a reader's backbone and batch run in these tests, with stand-ins.
PYTHON_RUN_ELSEWHERE = {
    "docs/integrations.md": (
        "tests/integrations/lightly/test_lightly_doc.py",
        "tests/integrations/solo_learn/test_solo_doc.py",
    ),
    "docs/stable_pretraining.md": ("tests/integrations/stable_pretraining/test_stable_pretraining_doc.py",),
}
# solo-learn's own scripts, run from a solo-learn checkout.
SOLO_SCRIPTS = {"main_pretrain.py", "main_linear.py", "main_knn.py", "main_umap.py"}
SOLO_CONFIGS = ROOT / "integrations" / "solo_learn" / "configs"
# Optional packages a Python snippet may import, and the extra that installs each.
EXTRAS = {"lightly": "lightly", "stable_pretraining": "stable-pretraining", "solo": "solo"}


def _blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.DOTALL | re.MULTILINE)


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def _python_snippets() -> list:
    return [
        pytest.param(page, index, block, id=f"{_name(page)}-{index}")
        for page in PAGES
        if _name(page) not in PYTHON_RUN_ELSEWHERE
        for index, block in enumerate(_blocks(page, "python"))
    ]


@pytest.mark.parametrize("page,index,block", _python_snippets())
def test_python_snippet_runs(page, index, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(block, f"{_name(page)}[{index}]", "exec"), {"__name__": "snippet"})
    except ModuleNotFoundError as error:
        extra = EXTRAS.get((error.name or "").split(".")[0])
        if extra is None:
            raise
        pytest.skip(f"needs {error.name}: pip install 'music-ssl[{extra}]'")


def test_pages_run_elsewhere_have_their_tests():
    for page, tests in PYTHON_RUN_ELSEWHERE.items():
        assert _blocks(ROOT / page, "python"), f"{page} has no Python snippet any more"
        for test in tests:
            assert (ROOT / test).is_file(), f"{page}'s snippets are run by {test}, which is missing"


def _commands(block: str) -> list[list[str]]:
    """The block's commands as argument lists: comments dropped, continuations joined, && split."""
    text = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            if "&&" in words:
                cut = words.index("&&")
                commands.append(words[:cut])
                words = words[cut + 1 :]
            else:
                commands.append(words)
                words = []
    return commands


def _shell_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for language in ("bash", "sh"):
            for block in _blocks(page, language):
                found.extend((_name(page), _without_env(command)) for command in _commands(block))
    return found


def _without_env(command: list[str]) -> list[str]:
    """Leading VAR=value assignments set the environment; the command follows them."""
    index = 0
    while index < len(command) and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", command[index]):
        index += 1
    return command[index:]


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def _extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _check(command: list[str], help_runs: set[tuple[str, ...]]) -> str:
    """'' when the command is checked (or queued in help_runs), else why it is not."""
    program, *args = command
    if program == "make":
        missing = [a for a in args if "=" not in a and a not in _make_targets()]
        return f"unknown make target(s) {missing}" if missing else ""
    if program == "pip":
        for requirement in args:
            extras = re.fullmatch(r"(?:music-ssl|\.)\[([\w,-]+)\]", requirement)
            unknown = set(extras.group(1).split(",")) - _extras() if extras else set()
            if unknown:
                return f"pip extra(s) {sorted(unknown)} are not in pyproject.toml"
        return ""
    if program in ("git", "cd"):
        return ""  # fetching and entering another project's checkout
    if program == "bash":
        script = ROOT / args[0]
        if not script.is_file():
            return f"no script {args[0]}"
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        return result.stderr
    if program == "music-ssl-solo":
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        if program not in scripts:
            return "music-ssl-solo is not a console script of the package"
        return (
            "" if args and args[0] in SOLO_SCRIPTS else f"music-ssl-solo runs a solo-learn script, got {args}"
        )
    if program in ("python", "python3"):
        if args[:2] == ["-m", "pytest"]:
            missing = [a for a in args[2:] if not a.startswith("-") and not (ROOT / a).exists()]
            return f"no test path {missing}" if missing else ""
        if args[:1] == ["-m"]:
            help_runs.add(("-m", args[1]))
            return ""
        if args and args[0] in SOLO_SCRIPTS:
            for flag, value in zip(args, args[1:], strict=False):
                # NAME.yaml is a config of solo-learn's own tree; a bare NAME is one of ours.
                packaged = value.endswith(".yaml") or (SOLO_CONFIGS / f"{value}.yaml").is_file()
                if flag == "--config-name" and not packaged:
                    return f"--config-name {value} is not a packaged config"
            return ""
        if args and (ROOT / args[0]).is_file():
            help_runs.add((args[0],))
            return ""
        return f"unknown script {args[:1]}"
    return f"no check for the command {program!r}"


def test_shell_snippets_are_checked_and_hold(tmp_path):
    help_runs: set[tuple[str, ...]] = set()
    problems = []
    commands = _shell_commands()
    assert commands, "no shell snippet found"
    for page, command in commands:
        reason = _check(command, help_runs)
        if reason:
            problems.append(f"{page}: {shlex.join(command)}: {reason}")
    assert not problems, "\n".join(problems)
    for run in sorted(help_runs):
        # The package's own modules run from elsewhere, so that they come from the installed package
        # (python -m puts the working directory first on sys.path); benchmarks/ lives in the checkout.
        in_checkout = run[0] != "-m" or run[1].split(".")[0] == "benchmarks"
        result = subprocess.run(
            [sys.executable, *run, "--help"],
            cwd=ROOT if in_checkout else tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"python {' '.join(run)} --help failed:\n{result.stderr[-2000:]}"


def _markdown_files() -> list[Path]:
    """Every Markdown file of the repository (hidden folders, such as the virtual environment, left out)."""
    return sorted(
        p for p in ROOT.rglob("*.md") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    )


def _prose(page: Path) -> str:
    """The page without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.DOTALL | re.MULTILINE)


def _anchors(page: Path) -> set[str]:
    """The fragment names a Markdown renderer gives the page's headings: lower case, punctuation other
    than '-' and '_' dropped, spaces as '-', and '-1', '-2', ... on repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#+\s+(.+?)\s*$", _prose(page), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_relative_links_and_their_anchors_exist():
    broken = []
    for page in _markdown_files():
        for link in re.findall(r"\]\(([^)\s]+)\)", _prose(page)):
            if re.match(r"[a-z][a-z0-9+.-]*:", link):  # https:, mailto: ...
                continue
            path, _, fragment = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{_name(page)}: {link} (no such file)")
            elif fragment and target.suffix == ".md" and fragment not in _anchors(target):
                broken.append(f"{_name(page)}: {link} (no heading with that anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)
