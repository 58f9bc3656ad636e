"""``music-ssl-solo``: runs one of solo-learn's scripts with ``method=music`` registered.

    music-ssl-solo main_knn.py --pretrained_checkpoint_dir trained_models/music/<run id> ...
    music-ssl-solo umap --dataset custom ...                    # main_umap.py in the current directory
    music-ssl-solo main_pretrain.py --config-path my_configs --config-name my_music

solo's Hydra scripts find ``method=music`` through music-ssl's Hydra plugin; its argparse scripts
(``main_knn.py``, ``main_umap.py``) do not go through Hydra, so this command registers MUSIC first.
Hydra resolves a relative ``--config-path`` against the script's folder; here it is resolved against
the current directory, like every other path on the command line.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

from music_ssl.integrations.solo_learn.registration import register

_CONFIG_PATH_FLAGS = ("--config-path", "--config_path", "-cp")

USAGE = (
    "usage: music-ssl-solo SCRIPT [ARGS ...]\n"
    "  SCRIPT: path of a solo-learn script (main_knn.py, main_umap.py, main_pretrain.py, main_linear.py)\n"
    "          or its short name (knn, umap, pretrain, linear) for main_<name>.py in the current directory\n"
    "  ARGS:   the script's own arguments; a relative --config-path is taken from the current directory"
)


def resolve_config_path(args: Sequence[str], cwd: str | None = None) -> list[str]:
    """Makes a relative ``--config-path`` / ``-cp`` value absolute against ``cwd``.

    Args:
        args: command line arguments of the script, without the script itself.
        cwd: folder to resolve against. Defaults to the current working directory.

    Returns:
        list[str]: the arguments, with the config path made absolute; everything else unchanged.
    """

    cwd = os.getcwd() if cwd is None else cwd

    def absolute(path: str) -> str:
        # pkg:// and file:// are Hydra search path URLs, not file system paths
        if "://" in path or os.path.isabs(path):
            return path
        return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))

    resolved: list[str] = []
    expects_path = False
    for arg in args:
        if expects_path:
            resolved.append(absolute(arg))
            expects_path = False
        elif arg in _CONFIG_PATH_FLAGS:
            resolved.append(arg)
            expects_path = True
        elif arg.startswith(tuple(f"{flag}=" for flag in _CONFIG_PATH_FLAGS)):
            flag, path = arg.split("=", 1)
            resolved.append(f"{flag}={absolute(path)}")
        else:
            resolved.append(arg)
    return resolved


def find_script(name: str, cwd: str | None = None) -> str:
    """Returns the absolute path of the solo-learn script named on the command line.

    Args:
        name: a path to the script, or a short name such as ``knn`` for ``main_knn.py``.
        cwd: folder to look in. Defaults to the current working directory.

    Raises:
        FileNotFoundError: if neither ``name`` nor ``main_<name>.py`` exists.
    """

    cwd = os.getcwd() if cwd is None else cwd
    candidates = [name]
    if not name.endswith(".py"):
        short = name.removeprefix("main_")
        candidates += [f"main_{short}.py", f"{name}.py"]
    for candidate in candidates:
        path = os.path.join(cwd, os.path.expanduser(candidate))
        if os.path.isfile(path):
            return os.path.abspath(path)
    raise FileNotFoundError(
        f"solo-learn script {name!r} not found in {cwd!r} (tried {', '.join(candidates)}): run "
        "music-ssl-solo from a solo-learn checkout or pass the script's path, e.g. main_knn.py"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``music-ssl-solo``."""

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)

    script = find_script(argv[0])
    register()

    # run it as `python SCRIPT ARGS` would: its folder first on sys.path, argv[0] the script
    sys.argv = [script, *resolve_config_path(argv[1:])]
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
