"""Start or stop a standalone embedded PostgreSQL for CI's PgBouncer run.

python .ci/embedded_pg.py start HOME   -> prints the server's unix-socket directory
python .ci/embedded_pg.py stop HOME
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from engram.db.embedded import embedded_dsn, stop_embedded

if __name__ == "__main__":
    action, home = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        dsn = embedded_dsn(home, keep_running=True)
        print(parse_qs(urlsplit(dsn).query)["host"][0])
    else:
        stop_embedded(home)
