"""Adapters that plug music_ssl into SSL frameworks: lightly, solo-learn and stable-pretraining.

Beside them, what the adapters and benchmarks share and none of them imports a framework for: `recipes`
(the MUSIC authors' training recipes), `idx` (MNIST-format files, as Fashion-MNIST ships) and `backbones`
(the one small CNN and the one CIFAR-stem ResNet-18). Installed as
``music_ssl.integrations``; docs/integrations.md says how to add a host.
"""
