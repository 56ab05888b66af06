import sys

from reid_core.cli import main

sys.exit(main())
