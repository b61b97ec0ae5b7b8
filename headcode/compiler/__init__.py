"""The compiler: the reference evaluator and the fixed Numba kernels.

    compile_program(p).evaluate(table)   -> float64[n, n]  (p: a dsl.Program; table: a dsl.TokenTable)
    evaluate_many([p, q, ...], table)    -> float64[k, n, n]   (one kernel call)
    evaluate_batch(p, [t1, t2, ...])     -> [float64[n_i, n_i], ...]
    reference_evaluate(p, table)         -> the NumPy definition the kernels must equal

Imports only `headcode.dsl`.
"""

from headcode.compiler.program import (
    CompiledProgram,
    ProgramBatch,
    compile_program,
    evaluate_batch,
    evaluate_many,
    lexical_values,
)
from headcode.compiler.reference import reference_evaluate

__all__ = [
    "CompiledProgram", "ProgramBatch", "compile_program", "evaluate_batch", "evaluate_many", "lexical_values",
    "reference_evaluate",
]
