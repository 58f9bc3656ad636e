"""Hydra plugin shipped as ``hydra_plugins.music_ssl_solo`` (source lives here, see pyproject.toml)."""
