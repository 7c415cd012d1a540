#!/usr/bin/env python3
"""The Debian packages that PostgreSQL 19 needs to run on a system older than its build.

Debian builds PostgreSQL 19 only in experimental, against unstable's C library (libc6 2.43 and
newer ICU, libxml2, OpenSSL, liburing); this machine runs bookworm (libc6 2.36). Rather than a
container, scripts/postgres.sh unpacks the PostgreSQL packages together with the shared libraries
they run on, from the same archive, and points the binaries at them (patchelf). This script
decides which library packages: those the given Depends fields name (`lib*`, `zlib1g`), then
theirs, recursively, taking for each the newest version the given Packages indices offer.
Everything else a Depends line names (postgresql-common, locales, tzdata, debconf, perl, ...) is
left out: the server and psql run without it here, and the host's tzdata serves as the time zone
database.

    debian_closure.py [--exclude NAME]... PACKAGES_FILE... -- DEPENDS_FIELD...

prints one line per package: name, version, pool path, SHA256, in the order found. Excluded names
(the packages pinned by the caller, such as libpq5) are neither printed nor followed. It fails,
naming the package, when a library is in none of the indices.
"""

import subprocess
import sys


def read_index(path):
    """Package name -> list of stanzas (dicts) in one uncompressed Packages file."""
    packages = {}
    stanza = {}
    key = None
    with open(path, encoding="utf-8", errors="replace") as index:
        for line in index:
            line = line.rstrip("\n")
            if not line:
                if "Package" in stanza:
                    packages.setdefault(stanza["Package"], []).append(stanza)
                stanza, key = {}, None
            elif line[0] in " \t" and key:
                stanza[key] += "\n" + line.strip()
            else:
                key, _, value = line.partition(":")
                stanza[key] = value.strip()
    if "Package" in stanza:
        packages.setdefault(stanza["Package"], []).append(stanza)
    return packages


def newer(a, b):
    """True when Debian version a sorts after b (dpkg's own comparison)."""
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0


def library_depends(stanza):
    """The library packages a stanza depends on: the first of each alternative, versions dropped."""
    names = []
    for part in stanza.get("Depends", "").split(","):
        first = part.split("|")[0].strip()
        name = first.split(" ")[0].split(":")[0]
        if name.startswith(("lib", "zlib")) and not name.endswith("-dev"):
            names.append(name)
    return names


def main(argv):
    exclude = set()
    while argv[:1] == ["--exclude"] and len(argv) > 1:
        exclude.add(argv[1])
        argv = argv[2:]
    if "--" not in argv:
        sys.exit("usage: debian_closure.py [--exclude NAME]... PACKAGES_FILE... -- DEPENDS_FIELD...")
    split = argv.index("--")
    indices, depends = argv[:split], argv[split + 1 :]
    candidates = {}
    for path in indices:
        for name, stanzas in read_index(path).items():
            for stanza in stanzas:
                if stanza.get("Architecture") not in ("amd64", "all"):
                    continue
                best = candidates.get(name)
                if best is None or newer(stanza["Version"], best["Version"]):
                    candidates[name] = stanza
    seen = []
    queue = library_depends({"Depends": ", ".join(depends)})
    while queue:
        name = queue.pop(0)
        if name in seen or name in exclude:
            continue
        if name not in candidates:
            sys.exit(f"debian_closure.py: no package {name} in {', '.join(indices)}")
        seen.append(name)
        queue.extend(library_depends(candidates[name]))
    for name in seen:
        stanza = candidates[name]
        print(name, stanza["Version"], stanza["Filename"], stanza["SHA256"])

if __name__ == "__main__":
    main(sys.argv[1:])
