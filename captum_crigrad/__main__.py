import sys

from captum_crigrad.cli import main

sys.exit(main())
