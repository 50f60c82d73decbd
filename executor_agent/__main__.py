import sys

from executor_agent.cli import main

sys.exit(main())
