"""What the frozen devposture-agent runs: the agent's command line, nothing else."""

import sys

from devposture.agent.launch import main

sys.exit(main())
