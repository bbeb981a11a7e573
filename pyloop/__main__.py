"""``python -m pyloop ps|top|stats PID``: look inside the loops of a running process.

The process must serve its monitor (``PYLOOP_MONITOR=1`` in its environment, or
``pyloop.monitor.serve()``); see ``pyloop.monitor`` and ``pyloop/monitor/_cli.py``.
"""

import sys

from pyloop.monitor._cli import main

if __name__ == "__main__":
    sys.exit(main())
