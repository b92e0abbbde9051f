import sys

from podium.cli.main import main

sys.exit(main())
