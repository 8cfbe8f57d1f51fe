"""The scanner behind scripts/security-check.sh: detect-secrets over the files git tracks,
compared with the committed baseline (`.secrets.baseline`, whose entries were reviewed:
test fixtures, hashes). A finding not in the baseline fails. Secrets are never printed:
findings show as `path:line:type: <masked>`.

    python scripts/secret_scan.py REPO [--include-untracked] [--settings-from BASELINE]

Exit status: 0 pass, 1 findings, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

SKIPPED_SUFFIXES = (".gz", ".png", ".jpg", ".svg", ".pdf", ".gguf", ".whl")


def _git_files(repo: Path, include_untracked: bool) -> list[str]:
    commands = [["git", "ls-files", "-z"]]
    if include_untracked:
        commands.append(["git", "ls-files", "-z", "--others", "--exclude-standard"])
    files: list[str] = []
    for command in commands:
        out = subprocess.run(command, cwd=repo, capture_output=True, check=True).stdout
        files += [name for name in out.decode().split("\0") if name]
    return [
        f
        for f in files
        if not f.endswith(SKIPPED_SUFFIXES) and f != ".secrets.baseline" and (repo / f).is_file()
    ]


def _mask(value: str | None) -> str:
    if not value:
        return "<hidden>"
    show = min(4, len(value) // 4)
    return f"{value[:show]}****({len(value)} chars)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="security-check")
    parser.add_argument("repo", type=Path)
    parser.add_argument("--include-untracked", action="store_true")
    parser.add_argument("--settings-from", type=Path, help="use this baseline's settings only")
    args = parser.parse_args(argv)
    try:
        from detect_secrets.core import baseline
        from detect_secrets.core.secrets_collection import SecretsCollection
    except ImportError:
        print("security-check: detect-secrets is not installed (pip install detect-secrets)")
        return 2
    repo = args.repo.resolve()
    settings_file = args.settings_from or repo / ".secrets.baseline"
    if not settings_file.is_file():
        print(f"security-check: no baseline at {settings_file}")
        return 2
    # The baseline names its custom plugin by a path relative to the project root.
    os.chdir(Path(__file__).resolve().parent.parent)
    known = baseline.load(baseline.load_from_file(str(settings_file)), str(settings_file))
    if args.settings_from is not None:
        known = SecretsCollection()  # another tree: only the settings apply
    os.chdir(repo)
    files = _git_files(repo, args.include_untracked)
    found = SecretsCollection()  # filenames relative to the cwd, as in the baseline
    found.scan_files(*files, num_processors=1)
    new = found - known
    count = 0
    for filename, secret in new:
        print(f"{filename}:{secret.line_number}:{secret.type}: {_mask(secret.secret_value)}")
        count += 1
    if count:
        print(
            f"security-check: FAIL: {count} finding(s) in {len(files)} files. Remove the "
            "secret, or if it is a fake fixture mark the line `# pragma: allowlist secret` "
            "(or re-run `detect-secrets scan --baseline .secrets.baseline` and review)."
        )
        return 1
    print(f"security-check: PASS: {len(files)} files, no secrets outside the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
