"""``python -m hf_unlearn.cli``: the ``hf-unlearn`` console script."""

import sys

from .main import main

sys.exit(main())
