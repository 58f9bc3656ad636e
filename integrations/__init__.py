"""Adapters that plug music_ssl into SSL frameworks (lightly, solo-learn)."""
