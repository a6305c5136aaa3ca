import sys

from devposture.collector.cli import main

sys.exit(main())
