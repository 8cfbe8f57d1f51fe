"""`anthropic-router keys create|list|show|revoke`: client keys in the store at DATABASE_URL.

`keys create` prints the new key alone on standard output (scripts capture it with
`KEY=$(anthropic-router keys create alice)`); the details go to standard error. The key
is shown this once: the store keeps only its hash.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from pydantic import ValidationError

from anthropic_router.config import Settings
from anthropic_router.gateway.keys import (
    KeyRecord,
    KeysError,
    create_key,
    find_key,
    list_keys,
    parse_expiry,
    revoke_key,
)
from anthropic_router.store import StoreError, open_store


def add_keys_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="manage client keys (budgets, rate limits)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key; prints it alone on stdout")
    create.add_argument("name")
    create.add_argument("--budget-usd", type=float, help="spend budget in USD per --per period")
    create.add_argument("--per", choices=("day", "month"), help="budget period (UTC)")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens (input + output) per minute")
    create.add_argument("--models", help="comma-separated globs of allowed models")
    create.add_argument("--expires", help="last valid day (YYYY-MM-DD, UTC) or ISO date-time")
    create.add_argument("--json", action="store_true", help="details as JSON on stderr")
    for name, text in (("list", "list keys"), ("show", "show one key"), ("revoke", "revoke a key")):
        action = actions.add_parser(name, help=text)
        if name != "list":
            action.add_argument("name", help="the key's name or id")
        action.add_argument("--json", action="store_true", help="print JSON")
    keys.set_defaults(func=run_keys)


def run_keys(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"anthropic-router: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(settings, args))
    except KeysError as exc:
        print(f"anthropic-router keys: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"anthropic-router keys: DATABASE_URL: {exc}", file=sys.stderr)
        return 2


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    store = await open_store(
        settings.database_url, connect_timeout=settings.database_connect_timeout
    )
    try:
        if args.keys_command == "create":
            return await _create(store, args)
        if args.keys_command == "list":
            records = await list_keys(store)
            _print([r.public() for r in records], args.json, _table)
            return 0
        command = find_key if args.keys_command == "show" else revoke_key
        record = await command(store, args.name)
        _print(record.public(), args.json, _details)
        return 0
    finally:
        await store.close()


async def _create(store: Any, args: argparse.Namespace) -> int:
    for flag in ("rpm", "tpm", "budget_usd"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise KeysError(f"--{flag.replace('_', '-')} must be positive")
    key, record = await create_key(
        store,
        args.name,
        budget_usd=args.budget_usd,
        budget_period=args.per,
        rpm=args.rpm,
        tpm=args.tpm,
        models=[m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        expires_at=parse_expiry(args.expires) if args.expires else None,
    )
    print(key)
    details = json.dumps(record.public()) if args.json else _details(record.public())
    print(details, file=sys.stderr)
    print("The key is shown only this once; the store keeps its hash.", file=sys.stderr)
    return 0


def _print(data: Any, as_json: bool, as_text: Any) -> None:
    print(json.dumps(data, indent=2) if as_json else as_text(data))


def _details(data: dict[str, Any]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in data.items() if value is not None)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no keys"
    lines = [f"{'NAME':<20} {'ID':<16} {'STATUS':<8} {'RPM':>6} {'TPM':>8} BUDGET"]
    for row in rows:
        budget = f"${row['budget_usd']}/{row['budget_period']}" if row["budget_usd"] else "-"
        lines.append(
            f"{row['name']:<20} {row['id']:<16} {row['status']:<8} {row['rpm'] or '-':>6} "
            f"{row['tpm'] or '-':>8} {budget}"
        )
    return "\n".join(lines)


__all__ = ["KeyRecord", "add_keys_commands", "run_keys"]
