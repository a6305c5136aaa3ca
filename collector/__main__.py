import sys

from devposture.collector.launch import main

sys.exit(main())
