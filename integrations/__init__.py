"""Adapters that plug music_ssl into SSL frameworks: lightly, solo-learn and stable-pretraining.

Installed as ``music_ssl.integrations``; docs/integrations.md says how to add a host.
"""
