"""Hydra search path plugin: makes ``--config-name music_cifar`` and ``method=music`` work in solo-learn.

Hydra imports every module under the ``hydra_plugins`` namespace when an app composes its config,
which for solo-learn's ``main_pretrain.py`` / ``main_linear.py`` happens inside ``@hydra.main``,
after those scripts imported ``solo.methods.METHODS`` at module top. That is the moment to add
``"music"`` to that dict. Apps that never loaded solo-learn only get the extra search path entry.
"""

from __future__ import annotations

import sys
import warnings

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

CONFIG_SEARCH_PATH = "pkg://music_ssl.integrations.solo_learn.configs"


class MUSICSoloSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="music-ssl", path=CONFIG_SEARCH_PATH)

        if "solo.methods" in sys.modules:
            try:
                from music_ssl.integrations.solo_learn import register

                register()
            except Exception as error:  # a broken registration must not break other solo methods
                warnings.warn(
                    f"music-ssl could not register method=music with solo-learn: {error!r}",
                    stacklevel=2,
                )
