import sys

from ratifier.cli import main

sys.exit(main())
