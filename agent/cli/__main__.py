"""`python -m agent.cli`: the same as the `qwq-agent` script."""

import sys

from agent.cli.main import main

sys.exit(main())
