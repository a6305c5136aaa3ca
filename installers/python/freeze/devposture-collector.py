"""What the frozen devposture-collector runs: the collector's command line, nothing else."""

import sys

from devposture.collector.launch import main

sys.exit(main())
