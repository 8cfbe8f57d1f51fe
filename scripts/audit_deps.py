"""pip-audit of the installed versions of anthropic-router's dependencies (runtime, test and
litellm extras, transitively): run by scripts/test.sh, as in CI.

A known vulnerability fails (exit 1). When the vulnerability service cannot be reached (this
machine may only reach a package mirror), that is reported loudly with how many packages went
unaudited, and the run does not fail: a network outage must not block every change, but it
must never look like a clean audit either.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import tempfile

from packaging.requirements import Requirement

EXTRAS = ("test", "litellm")


def _closure(root: str) -> dict[str, str]:
    """name -> installed version, for `root` and everything it requires."""
    found: dict[str, str] = {}
    pending = [(root, EXTRAS)]
    while pending:
        name, extras = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency for another platform
        found[key] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker and not any(marker.evaluate({"extra": e}) for e in (*extras, "")):
                continue
            pending.append((requirement.name, ()))
    found.pop("anthropic-router", None)
    return found


def main() -> int:
    packages = _closure("anthropic-router")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write("".join(f"{n}=={v}\n" for n, v in sorted(packages.items())))
        requirements.flush()
        command = [
            sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip", "--progress-spinner",
            "off", "-f", "json", "-r", requirements.name,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pip-audit: WARNING: the audit did not run: {last[:300]}")
        print(f"pip-audit: WARNING: {len(packages)} dependencies NOT audited")
        return 0
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"pip-audit: VULNERABLE {dep['name']} {dep.get('version')}: {ids}")
    if skipped:
        print(
            f"pip-audit: WARNING: {len(skipped)} of {len(dependencies)} dependencies NOT "
            f"audited (the vulnerability service was unreachable or does not know them), "
            f"e.g. {skipped[0]['skip_reason'][:200]}"
        )
    audited = len(dependencies) - len(skipped)
    if vulnerable:
        print(f"pip-audit: FAIL: {len(vulnerable)} vulnerable of {audited} audited")
        return 1
    print(f"pip-audit: {audited} of {len(dependencies)} dependencies audited, none vulnerable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
