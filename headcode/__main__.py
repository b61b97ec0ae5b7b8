import sys

from headcode.cli import main

sys.exit(main())
