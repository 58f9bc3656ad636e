"""``music-ssl-solo``: script lookup, --config-path resolution and running a script; no solo-learn needed."""

from __future__ import annotations

import json
import os
import sys

import pytest

from music_ssl.integrations.solo_learn import cli


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--config-path", "configs", "--config-name", "x"],
            ["--config-path", "/work/configs", "--config-name", "x"],
        ),
        (["--config-path=configs/sub"], ["--config-path=/work/configs/sub"]),
        (["-cp", "../up"], ["-cp", "/up"]),
        (["-cp=."], ["-cp=/work"]),
        (["--config-path", "/abs/dir"], ["--config-path", "/abs/dir"]),
        (["--config-path", "pkg://some.module"], ["--config-path", "pkg://some.module"]),
        (
            ["--dataset", "custom", "data.train_path=configs"],
            ["--dataset", "custom", "data.train_path=configs"],
        ),
    ],
)
def test_resolve_config_path(args, expected):
    assert cli.resolve_config_path(args, cwd="/work") == expected


def test_find_script_accepts_path_and_short_name(tmp_path):
    script = tmp_path / "main_knn.py"
    script.write_text("")
    assert cli.find_script("main_knn.py", cwd=str(tmp_path)) == str(script)
    assert cli.find_script("knn", cwd=str(tmp_path)) == str(script)
    assert cli.find_script("main_knn", cwd=str(tmp_path)) == str(script)
    with pytest.raises(FileNotFoundError, match="main_umap.py"):
        cli.find_script("umap", cwd=str(tmp_path))


def test_main_registers_then_runs_script_with_resolved_config_path(tmp_path, monkeypatch):
    checkout = tmp_path / "solo-learn"
    checkout.mkdir()
    record = tmp_path / "record.json"
    (checkout / "main_knn.py").write_text(
        "import json, sys\n"
        "if __name__ == '__main__':\n"
        f"    json.dump({{'argv': sys.argv, 'path0': sys.path[0]}}, open({str(record)!r}, 'w'))\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    calls = []
    monkeypatch.setattr(cli, "register", lambda: calls.append("register"))
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", sys.argv[:])
    monkeypatch.setattr(sys, "path", sys.path[:])

    cli.main([str(checkout / "main_knn.py"), "--config-path", "my_configs", "--k", "5"])

    assert calls == ["register"]
    ran = json.loads(record.read_text())
    assert ran["argv"] == [
        str(checkout / "main_knn.py"),
        "--config-path",
        os.path.join(str(work), "my_configs"),
        "--k",
        "5",
    ]
    assert ran["path0"] == str(checkout)


def test_main_without_arguments_prints_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "usage: music-ssl-solo" in capsys.readouterr().out
