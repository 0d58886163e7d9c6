"""``python -m extproc.mock``: run the mock LLM provider."""

import sys

from extproc.mock.server import main

sys.exit(main())
