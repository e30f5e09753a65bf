import sys

from ratifier.app.cli import main

sys.exit(main())
