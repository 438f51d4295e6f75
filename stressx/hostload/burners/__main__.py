"""Entry point of one burner process: ``python -m stressx.hostload.burners`` with its job on stdin."""
import sys

from .process import main

if __name__ == "__main__":
    sys.exit(main())
