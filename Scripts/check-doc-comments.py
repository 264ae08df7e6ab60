#!/usr/bin/env python3
"""Fails when a public symbol of the named modules has no documentation comment.

Reads the symbol graphs `swift package generate-documentation` leaves under .build
(extracted-symbols/<package>/<Module>/<Module>*.symbols.json). A symbol without a source
location is one the compiler synthesized (`hash(into:)` of a Hashable type), which has no
source to comment, and is skipped, as is one declared in a dependency's checkout (a default
implementation of its protocol); a symbol that implements a documented protocol requirement
inherits that requirement's comment in the graph.

Usage: Scripts/check-doc-comments.py [--build-path .build] Module [Module...]
"""
import glob
import json
import os
import sys


def main(argv):
    build = ".build"
    if len(argv) > 2 and argv[1] == "--build-path":
        build, argv = argv[2], argv[:1] + argv[3:]
    modules = argv[1:]
    if not modules:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    failed = False
    for module in modules:
        graphs = glob.glob(os.path.join(build, "**", "extracted-symbols", "**", module, module + "*.symbols.json"), recursive=True)
        if not graphs:
            print(f"error: no symbol graph of {module} under {build}: run `swift package generate-documentation --target {module}` first", file=sys.stderr)
            failed = True
            continue
        missing = []
        public = 0
        for path in graphs:
            with open(path, encoding="utf-8") as f:
                graph = json.load(f)
            for symbol in graph.get("symbols", []):
                if symbol.get("accessLevel") not in ("public", "open"):
                    continue
                public += 1
                location = symbol.get("location")
                if "docComment" in symbol or location is None:
                    continue
                # A default implementation a dependency provides (NIO's `wrapInboundOut`) is
                # that package's to document.
                if "/.build/" in location.get("uri", "") or "/checkouts/" in location.get("uri", ""):
                    continue
                file = location.get("uri", "?").split("/Sources/")[-1]
                line = location.get("position", {}).get("line", 0) + 1
                missing.append(f"Sources/{file}:{line}: {'/'.join(symbol.get('pathComponents', []))}")
        print(f"{module}: {public} public symbols, {len(missing)} without a documentation comment", flush=True)
        for m in sorted(set(missing)):
            print(f"  error: {m} has no documentation comment", file=sys.stderr)
        failed = failed or bool(missing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
