"""Benchmarks of music-ssl: loss speed and memory, and representation quality."""
