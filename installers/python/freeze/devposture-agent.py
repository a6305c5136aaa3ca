"""What the frozen devposture-agent runs: the agent's command line, nothing else."""

import sys

from devposture.agent.cli import main

sys.exit(main())
