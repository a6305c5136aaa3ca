import sys

from devposture.agent.cli import main

sys.exit(main())
