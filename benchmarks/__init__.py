"""Benchmarks: each ``bench_<name>.py`` measures ours against a reference library, same machine, same run."""
