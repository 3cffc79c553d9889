"""Grading harness for the backprop practical: read → sandbox → check → score → render."""

__version__ = "0.4.0"

# One BLAS/OpenMP thread per process: the grader runs one worker per core, and OpenBLAS's
# default of a thread per core per process makes them spin against each other. Set before
# NumPy loads (``grader.__main__``, the tests' conftest, each worker); nothing here imports it.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
