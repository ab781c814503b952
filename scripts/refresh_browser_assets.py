"""Refresh the npm files that coursepulse's pages load (GraphiQL, graphql-ws), from the registry.

`make browser-assets` runs it. For each pinned package it downloads the registry's
tarball, checks it against the registry's `dist.integrity` (sha512), extracts the one file
a page needs, and writes `coursepulse/web/static/vendor/manifest.json` with
each file's Subresource Integrity hash (sha384), which the page puts in its `integrity`
attributes. `--check` verifies the files in the package against the manifest instead and
downloads nothing (CI runs it).

Change a version here, run the script, look at the page, commit the files and manifest.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
ASSET_DIR = Path(__file__).resolve().parent.parent / "coursepulse" / "web" / "static" / "vendor"
MANIFEST = ASSET_DIR / "manifest.json"


@dataclass(frozen=True)
class Asset:
    """One file of one pinned npm package, and the name it is served under."""

    package: str
    version: str
    path_in_package: str
    name: str


#: GraphiQL in the versions Strawberry's own GraphiQL page uses, so it behaves as upstream's
#: does; graphql-ws for the progress app's live bars.
ASSETS: tuple[Asset, ...] = (
    Asset("react", "18.2.0", "umd/react.production.min.js", "react.production.min.js"),
    Asset("react-dom", "18.2.0", "umd/react-dom.production.min.js", "react-dom.production.min.js"),
    Asset("graphiql", "3.8.3", "graphiql.min.js", "graphiql.min.js"),
    Asset("graphiql", "3.8.3", "graphiql.min.css", "graphiql.min.css"),
    Asset("@graphiql/plugin-explorer", "1.0.2", "dist/index.umd.js", "plugin-explorer.umd.js"),
    Asset("@graphiql/plugin-explorer", "1.0.2", "dist/style.css", "plugin-explorer.css"),
    Asset("graphql-ws", "6.4.2", "umd/graphql-ws.min.js", "graphql-ws.min.js"),
)


def sri(data: bytes) -> str:
    """The Subresource Integrity value (sha384) of `data`."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def fetch(url: str) -> bytes:
    """The body of `url` (the npm registry only)."""
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - fixed https URL
        return response.read()


def tarball(package: str, version: str) -> tuple[bytes, dict[str, str]]:
    """The package's tarball, verified against the registry's sha512 integrity, and its dist."""
    metadata = json.loads(fetch(f"{REGISTRY}/{package}/{version}"))
    dist = metadata["dist"]
    data = fetch(dist["tarball"])
    algorithm, _, expected = dist["integrity"].partition("-")
    if algorithm != "sha512":
        raise SystemExit(f"{package}@{version}: unexpected integrity algorithm {algorithm}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{package}@{version}: tarball does not match the registry's integrity")
    return data, dist


def extract(data: bytes, path_in_package: str) -> bytes:
    """One file of an npm tarball (whose entries live under `package/`)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = archive.extractfile(f"package/{path_in_package}")
        if member is None:
            raise SystemExit(f"{path_in_package} is not a file in the tarball")
        return member.read()


def refresh() -> None:
    """Download every asset, write it beside the manifest, and write the manifest."""
    ASSET_DIR.mkdir(parents=True, exist_ok=True)
    tarballs: dict[tuple[str, str], tuple[bytes, dict[str, str]]] = {}
    entries = []
    for asset in ASSETS:
        key = (asset.package, asset.version)
        if key not in tarballs:
            tarballs[key] = tarball(*key)
        data, dist = tarballs[key]
        content = extract(data, asset.path_in_package)
        (ASSET_DIR / asset.name).write_bytes(content)
        entries.append(
            {
                "name": asset.name,
                "package": asset.package,
                "version": asset.version,
                "path": asset.path_in_package,
                "tarball_integrity": dist["integrity"],
                "integrity": sri(content),
                "bytes": len(content),
            }
        )
        print(f"{asset.package}@{asset.version}/{asset.path_in_package} -> {asset.name}")
    MANIFEST.write_text(json.dumps({"assets": entries}, indent=2) + "\n")
    print(f"wrote {MANIFEST}")


def check() -> int:
    """0 when every file in the manifest is present and matches its hash, else 1."""
    manifest = json.loads(MANIFEST.read_text())
    failures = 0
    for entry in manifest["assets"]:
        path = ASSET_DIR / entry["name"]
        if not path.is_file() or sri(path.read_bytes()) != entry["integrity"]:
            print(f"{entry['name']}: missing or does not match the manifest", file=sys.stderr)
            failures += 1
    pinned = {(a.package, a.version, a.name) for a in ASSETS}
    listed = {(e["package"], e["version"], e["name"]) for e in manifest["assets"]}
    if pinned != listed:
        print("the manifest does not list the pinned versions: refresh it", file=sys.stderr)
        failures += 1
    if not failures:
        print(f"{len(manifest['assets'])} browser files match their manifest")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, download nothing")
    args = parser.parse_args()
    if args.check:
        return check()
    refresh()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
