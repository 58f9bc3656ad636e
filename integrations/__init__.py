"""Adapters that plug music_ssl into SSL frameworks: lightly, solo-learn and stable-pretraining.

Beside them, what every adapter shares and none of them imports a framework for: `recipes` (the MUSIC
authors' training recipes) and `idx` (MNIST-format files, as Fashion-MNIST ships). Installed as
``music_ssl.integrations``; docs/integrations.md says how to add a host.
"""
