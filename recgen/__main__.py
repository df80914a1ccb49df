import sys

from recgen.cli import main

sys.exit(main())
