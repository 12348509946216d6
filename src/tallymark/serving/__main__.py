"""``python -m tallymark.serving --workspace WS --endpoint NAME``: see :mod:`tallymark.serving.run`."""

import sys

from tallymark.serving.run import main

sys.exit(main())
