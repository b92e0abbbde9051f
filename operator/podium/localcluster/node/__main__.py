import sys

from podium.localcluster.node import main

sys.exit(main())
