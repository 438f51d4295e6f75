"""`python -m stressx.cli ARGS`: the `stressx` command."""
from . import main

if __name__ == "__main__":
    main()
