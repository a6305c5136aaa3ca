import sys

from devposture.agent.launch import main

sys.exit(main())
