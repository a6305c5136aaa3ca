"""What the frozen devposture-collector runs: the collector's command line, nothing else."""

import sys

from devposture.collector.cli import main

sys.exit(main())
