"""Test support, shipped for the test suite and the benchmarks; no library module imports it.

simclient  SimClient: a minimal client of the ibsim wire protocol
oracles    slow reference implementations (max-min fair sharing) for the vectorised kernels
"""
