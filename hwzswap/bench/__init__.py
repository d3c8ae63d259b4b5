"""Benchmarking: real page data (capture, bundled corpus), workloads and the cross-backend runner."""
