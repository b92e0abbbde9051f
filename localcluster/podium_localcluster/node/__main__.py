import sys

from podium_localcluster.node import main

sys.exit(main())
