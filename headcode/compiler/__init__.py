"""Token tables, the reference evaluator and the Numba kernels. Imports only headcode.dsl."""
