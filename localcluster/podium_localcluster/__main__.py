import sys

from podium_localcluster.cli import main

sys.exit(main())
