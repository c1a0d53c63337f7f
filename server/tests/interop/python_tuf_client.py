"""Updates from an Otter TUF repository with python-tuf's ngclient, the reference client.

Usage: python_tuf_client.py METADATA_URL TARGETS_URL TRUSTED_ROOT WORKDIR TARGET...

Trusts TRUSTED_ROOT (a root.json), refreshes the metadata, downloads every named TARGET into
WORKDIR and prints a JSON report: {"targets": {NAME: {"path", "sha256", "length", "custom"}}}.
Exits non-zero (with python-tuf's error on stderr) when anything fails to verify.
"""

import hashlib
import inspect
import json
import os
import shutil
import sys

from tuf.ngclient import Updater


def main() -> int:
    metadata_url, targets_url, trusted_root, workdir, *names = sys.argv[1:]
    metadata_dir = os.path.join(workdir, "metadata")
    target_dir = os.path.join(workdir, "targets")
    os.makedirs(metadata_dir)
    os.makedirs(target_dir)
    shutil.copy(trusted_root, os.path.join(metadata_dir, "root.json"))
    # python-tuf >= 6 takes the trust anchor explicitly; older ones read the copy above.
    anchor = {}
    if "bootstrap" in inspect.signature(Updater.__init__).parameters:
        with open(trusted_root, "rb") as f:
            anchor["bootstrap"] = f.read()

    updater = Updater(
        metadata_dir=metadata_dir,
        metadata_base_url=metadata_url,
        target_dir=target_dir,
        target_base_url=targets_url,
        **anchor,
    )
    updater.refresh()
    report = {}
    for name in names:
        info = updater.get_targetinfo(name)
        if info is None:
            print(f"{name}: not in the targets metadata", file=sys.stderr)
            return 1
        path = updater.download_target(
            info, filepath=os.path.join(target_dir, name.replace("/", "_"))
        )
        with open(path, "rb") as f:
            data = f.read()
        report[name] = {
            "path": path,
            "sha256": hashlib.sha256(data).hexdigest(),
            "length": len(data),
            "custom": info.custom,
        }
    json.dump({"targets": report}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
