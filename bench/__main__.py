"""`python -m bench` (`make bench`): generate the dataset, run the load, print and save the table."""

import sys

from bench.run import main

sys.exit(main())
