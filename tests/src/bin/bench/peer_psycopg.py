"""psycopg 3 as a peer consumer for the receive benchmark (run by bytebase-signal-bench).

Usage: peer_psycopg.py DSN TOTAL. Says "listening" on stderr once LISTEN is in effect, then
prints the wall-clock time (seconds since the epoch) at which it received the TOTAL-th
notification on channel bytebase_signal.
"""

import sys
import time

import psycopg


def main() -> None:
    dsn, total = sys.argv[1], int(sys.argv[2])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("LISTEN bytebase_signal")
        print("listening", file=sys.stderr, flush=True)
        count = 0
        for _ in conn.notifies():
            count += 1
            if count == total:
                print(time.time(), flush=True)
                return


if __name__ == "__main__":
    main()
