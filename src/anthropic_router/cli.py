"""`anthropic-router serve`, `check-config`, `keys` (gateway/commands.py), and the launcher:
`code`, `env`, `status`, `stop`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import tempfile
from typing import Any

from pydantic import ValidationError

from anthropic_router import __version__
from anthropic_router.config import Settings
from anthropic_router.errors import ConfigError
from anthropic_router.routing import TIER_SAMPLES, Router


def _settings() -> tuple[Settings, Router] | None:
    """Settings and the router built from them (routing file read, every provider a route
    needs built): any problem is printed naming what to fix, and None returned."""
    try:
        settings = Settings()
        router = Router(settings)
        if settings.gateway_enabled:  # the routing file's `prices:` section
            from anthropic_router.gateway import load_price_overrides

            load_price_overrides(settings)
        return settings, router
    except ValidationError as exc:
        print("anthropic-router: invalid configuration:", file=sys.stderr)
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper() or "settings"
            message = error["msg"].removeprefix("Value error, ")
            print(f"  {name}: {message}", file=sys.stderr)
    except ConfigError as exc:
        print(f"anthropic-router: invalid configuration: {exc}", file=sys.stderr)
    return None


def _serve(args: argparse.Namespace) -> int:
    # Flags win over the environment; workers re-read settings from it.
    if args.host:
        os.environ["HOST"] = args.host
    if args.port:
        os.environ["PORT"] = str(args.port)
    if args.workers:
        os.environ["WORKERS"] = str(args.workers)
    loaded = _settings()
    if loaded is None:
        return 2
    settings = loaded[0]
    import uvicorn

    from anthropic_router.app import App
    from anthropic_router.observability import configure_logging

    configure_logging(
        settings.log_level,
        settings.json_logs,
        settings.log_file,
        settings.log_file_max_bytes,
        settings.log_file_backups,
    )
    log = logging.getLogger("anthropic_router")
    log.info("backend %s: %s", settings.backend.value, settings.backend_reason)
    for warning in settings.warnings():
        log.warning(warning)
    app: Any = "anthropic_router.app:create_app_from_env"
    if settings.workers > 1:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its metrics to files here; /metrics in any worker sums them.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="anthropic-router-")
    else:
        app = App(settings, loaded[1])  # one process: reuse the router built to check it
    # uvicorn re-raises the signal it handled once shutdown is complete, with the handler it
    # found installed: a no-op one makes a clean stop exit 0 rather than -15.
    signal.signal(signal.SIGTERM, _after_clean_shutdown)
    options: dict[str, Any] = dict(
        factory=settings.workers > 1,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="auto",
        http="auto",
        lifespan="on",
        access_log=False,
        server_header=False,
        # The router reads no client address; uvicorn's X-Forwarded-* rewriting is a
        # middleware layer (and a scan of the headers) on every request.
        proxy_headers=False,
        log_config=None,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )
    from anthropic_router import workers

    if settings.workers > 1 and workers.available():
        workers.run(app, **options)  # the kernel spreads connections over the workers
    else:
        uvicorn.run(app, **options)
    return 0


def _after_clean_shutdown(signum: int, frame: Any) -> None:
    """Installed before uvicorn runs; called only by uvicorn's re-raise at the very end."""


def _check_config(_: argparse.Namespace) -> int:
    loaded = _settings()
    if loaded is None:
        return 2
    settings, router = loaded
    local = _local_servers(settings, router)  # first: the profiles below depend on it
    view = settings.public_view()
    view["model_mapping"] = {
        name: router.resolve(name).upstream_model
        for name in ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-8")
    }
    view["routes"] = {
        name: [f"{t.backend}:{t.upstream_model} ({t.wire})" for t in router.resolve(name).targets]
        for name in [*router.aliases, *TIER_SAMPLES]
    }
    view["profiles"] = {
        target.upstream_model: _profile_view(target.options.capabilities)
        for name in view["routes"]
        for target in router.resolve(name).targets
    }
    view["decision_table"] = _decision_table(router)
    if local:
        view["local_servers"] = local
    view["response_cache"] = _response_cache_view(settings)
    view["warnings"] = settings.warnings()
    print(json.dumps(view, indent=2, sort_keys=True))
    return 0


def _response_cache_view(settings: Settings) -> str:
    """One line on the response cache (not Anthropic prompt caching): on or off, and why."""
    if not settings.response_cache_enabled:
        return (
            "off: the default (a replay repeats one sampled answer to every identical request); "
            "PROMPT_CACHE_ENABLE=true turns it on (docs/16-caching.md)"
        )
    store = "redis (REDIS_URL, shared)" if settings.redis_url else "memory (this process)"
    only = ", temperature 0 only" if settings.prompt_cache_only_deterministic else ""
    return f"on: {store}, TTL {settings.prompt_cache_ttl:g} s{only}"


def _decision_table(router: Router) -> list[dict[str, Any]]:
    """The routing file's `rules:` in evaluation order, each with its targets, then the
    default (routes and tiers by model name)."""
    rows: list[dict[str, Any]] = []
    for rule in router.rules:
        conditions = {n: list(v) if isinstance(v, tuple) else v for n, v in rule.conditions}
        targets = router.for_rule(rule, "claude-opus-4-8").targets
        use = [f"{t.backend}:{t.upstream_model} ({t.wire})" for t in targets]
        rows.append({"rule": rule.name, "if": conditions, "use": use})
    rows.append({"rule": "default", "if": "no rule matched", "use": "routes by model name"})
    return rows


def _local_servers(settings: Settings, router: Router) -> list[dict[str, str]]:
    """Which profile each local route uses and why, detecting the server as `serve` would."""
    if router.needs_detection:
        from anthropic_router.servers import detect_local

        async def probe() -> None:
            try:
                await detect_local(router, settings.openai_compatible_detect_timeout)
            finally:
                for provider in router.providers():
                    await provider.aclose()

        asyncio.run(probe())
    return router.local_profiles()


def _profile_view(caps: Any) -> dict[str, Any]:
    view = dataclasses.asdict(caps)
    view["rejected_params"] = sorted(view["rejected_params"])
    view["tool_choice_forms"] = sorted(view["tool_choice_forms"])
    return view


def _launcher(args: argparse.Namespace) -> int:
    from anthropic_router import launcher

    loaded = _settings()
    if loaded is None:
        return 2
    settings = loaded[0]
    if args.command == "code":
        return launcher.code(settings, list(args.claude_args))
    if args.command == "env":
        sys.stdout.write(launcher.export_lines(settings, os.environ))
        return 0
    if args.command == "status":
        return launcher.status(settings)
    return launcher.stop(settings)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["code"]:  # everything after `code` is Claude Code's, flags included
        return _launcher(argparse.Namespace(command="code", claude_args=argv[1:]))
    parser = argparse.ArgumentParser(prog="anthropic-router", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="bind address (env HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env PORT, default 4000)")
    serve.add_argument("--workers", type=int, help="worker processes (env WORKERS, default 1)")
    serve.set_defaults(func=_serve)
    check = commands.add_parser("check-config", help="validate settings and print them")
    check.set_defaults(func=_check_config)
    launch = {
        "code": "start a background router if none answers, then run `claude [args...]` on it",
        "env": 'print the shell exports for Claude Code: eval "$(anthropic-router env)"',
        "status": "show the background router started by `code`",
        "stop": "stop the background router started by `code`",
    }
    for name, text in launch.items():
        commands.add_parser(name, help=text).set_defaults(func=_launcher)

    from anthropic_router.gateway.commands import add_keys_commands

    add_keys_commands(commands)  # keys create|list|show|revoke (docs/18-operations.md)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
