"""Hydra configs for MUSIC on solo-learn, loaded through ``pkg://music_ssl.integrations.solo_learn.configs``."""
