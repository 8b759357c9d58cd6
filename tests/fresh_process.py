"""Child side of conftest.run_in_fresh_process: run one module-level function of a test module in this new interpreter.

usage: python tests/fresh_process.py MODULE FUNCTION CALL_FILE RESULT_FILE [--no-configure]

CALL_FILE holds the pickled (args, kwargs); the function's return value is pickled into RESULT_FILE. Unless
--no-configure, veid_ml.determinism.configure(reexec=False) runs first, before the test module (and so TensorFlow) is
imported. The parent starts this interpreter with determinism.pinned_environ(), so nothing needs re-executing.
An exception propagates: its traceback on stderr is what the parent reports.
"""

import importlib
import pickle
import sys


def main(argv: list[str]) -> None:
    module_name, function_name, call_file, result_file, *flags = argv
    if "--no-configure" not in flags:
        from veid_ml import determinism

        determinism.configure(reexec=False)
    function = getattr(importlib.import_module(module_name), function_name)
    with open(call_file, "rb") as f:
        args, kwargs = pickle.load(f)
    result = function(*args, **kwargs)
    with open(result_file, "wb") as f:
        pickle.dump(result, f)


if __name__ == "__main__":  # as a script, sys.path[0] is tests/ (and PYTHONPATH the test module's folder)
    main(sys.argv[1:])
