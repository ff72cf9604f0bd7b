"""What the two daemons share: the event server (`es`) and the name server (`naming`) both
import from here, and so do their command lines (`es`, `ns`). The Python client library
(`clients/`) never does: nothing under `clients/` imports `es` or `naming` (a unit test checks).

- `lifecycle`: readiness, stop requests, signals, logging, exit codes.
- `storage` and `storagefile`: the `--storage` spec and its error; checking a sqlite file.
- `patterns`: RE2 patterns for subjects and names.
- `security`: the servers' side of CurveZMQ (their keys, key files, failed handshakes).
- `options`: typer options shared by the `es` and `ns` commands.
- `config`: how each daemon builds its one frozen config.
- `launch`: start a daemon process and read its ready line (`es up`, `es bench`, the tests).

It lives inside `es` because the repository's top level is fixed; the name server depends on the
event server's package for this subpackage only.
"""
