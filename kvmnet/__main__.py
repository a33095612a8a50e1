"""``python -m kvmnet``: the ``kvmnet`` command, for a venv whose ``bin/`` is not on PATH."""

import sys

from .cli import main

# Guarded: tools that import every module (pydoc, import-cycle checks, API doc builders) must
# not run the command and exit.
if __name__ == "__main__":
    sys.exit(main())
