import sys

from rltorch.cli import main

sys.exit(main())
