import sys

from facegender.cli import main

sys.exit(main())
