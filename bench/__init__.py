"""Benchmark harness (issue 8): a prefecture-scale dataset and a load run against a Starlette ceiling."""
