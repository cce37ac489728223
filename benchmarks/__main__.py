"""``python -m benchmarks``: run a named scenario and write its report.

    python -m benchmarks run fanout                      # start a server, every size
    python -m benchmarks run consult_grid --sizes 5,10   # override the sizes
    python -m benchmarks run fanout --url https://staging.example:8443 \\
        --secret-file portal.secret --issuer portal-a    # a running server
    python -m benchmarks run weak_link --rates 250,60    # capped downlink (benchmarks/weak_link.py)
    python -m benchmarks run browser_weak_link           # real Chromium at both ends
    python -m benchmarks run e2ee_cpu --repeat 3         # browser CPU with and without e2ee
    python -m benchmarks run soak --duration 1800        # churn soak: leaks (benchmarks/soak.py)
    python -m benchmarks run consult_grid --compare-workers 1,2   # 1 vs 2 processes
    python -m benchmarks run fanout --sizes 50,100,200 --compare-janus  # vs Janus VideoRoom
    python -m benchmarks list

Ctrl-C stops cleanly: workers leave, the server stops, and the steps
finished so far are written to the report.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import yaml

from benchmarks.report import write_report
from benchmarks.runner import StepResult, default_output, run_scenario
from benchmarks.scenario import SCENARIO_DIR, Scenario, ScenarioError
from signaling.config import Secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the scenarios")
    run = sub.add_parser("run", help="run a scenario")
    run.add_argument("scenario", help="a name from benchmarks/scenarios/ or a YAML path")
    run.add_argument("--sizes", help="comma-separated sizes (default: the scenario's)")
    run.add_argument("--duration", type=float, help="seconds measured per size")
    run.add_argument("--workers", type=int, default=2, help="load-generator processes (default 2)")
    run.add_argument("--url", help="a running server's base URL instead of starting one")
    run.add_argument("--secret-file", type=Path, help="HS256 secret for tokens (with --url)")
    run.add_argument("--issuer", default="dev", help="token issuer id (with --url)")
    run.add_argument("--no-baseline", action="store_true", help="skip the MediaRelay baseline")
    run.add_argument("--output", type=Path, help="report directory")
    weak = run.add_argument_group("weak_link only")
    weak.add_argument("--rates", help="comma-separated downlink caps in kbit/s")
    weak.add_argument("--link", choices=["netns", "relay", "auto"], help="how the cap is applied")
    weak.add_argument("--publisher", choices=["simulcast", "plain", "auto"])
    browsers = run.add_argument_group("browser_weak_link and e2ee_cpu only")
    browsers.add_argument(
        "--cases", help="comma-separated: 250k, 60k, uncapped (e2ee_cpu: clear, e2ee, clear-red)"
    )
    browsers.add_argument("--repeat", type=int, default=1, help="runs of each case")
    browsers.add_argument("--warmup", type=float, help="e2ee_cpu: seconds before measuring")
    run.add_argument(
        "--compare-udp",
        action="store_true",
        help="each size against one media UDP port (the default) and a port per connection",
    )
    run.add_argument(
        "--compare-joins",
        action="store_true",
        help="each size against arrivals announced in batches (the default) and one by one",
    )
    run.add_argument(
        "--compare-janus",
        action="store_true",
        help="each size against digiclinic and Janus's VideoRoom (needs the janus package)",
    )
    run.add_argument(
        "--compare-workers",
        help="e.g. 1,2: each size against `serve --workers N` for each N (a Redis is started)",
    )
    args = parser.parse_args(argv)

    if args.command == "list":
        for path in sorted(SCENARIO_DIR.glob("*.yaml")):
            print(f"{path.stem:14} {_description(path)}")
        return 0
    if _kind(args.scenario) == "browser_weak_link":
        from benchmarks import browser_weak_link  # noqa: PLC0415 - its own runner

        cases = args.cases.split(",") if args.cases else None
        return browser_weak_link.run_cli(cases, args.repeat, args.duration, args.output)
    if _kind(args.scenario) == "e2ee_cpu":
        from benchmarks import e2ee_cpu  # noqa: PLC0415 - its own runner

        modes = args.cases.split(",") if args.cases else None
        return e2ee_cpu.run_cli(args.repeat, args.duration, args.output, args.warmup, modes=modes)
    if _kind(args.scenario) == "weak_link":
        from benchmarks.weak_link import run_cli  # noqa: PLC0415 - its own runner

        rates = args.rates or args.sizes
        return run_cli(
            [int(r) for r in rates.split(",")] if rates else None,
            args.duration,
            args.link,
            args.publisher,
            args.output,
            _path(args.scenario),
        )
    try:
        scenario = Scenario.load(args.scenario)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.duration:
        scenario = Scenario(**{**scenario.__dict__, "duration": args.duration})
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else scenario.sizes
    if scenario.kind == "soak":
        return _soak(scenario, sizes[0], args.workers, args.output or default_output(scenario))
    secret = None
    if args.url:
        if args.secret_file is None:
            print("error: --url needs --secret-file to mint join tokens", file=sys.stderr)
            return 2
        secret = Secret(args.secret_file.read_text().strip())
    output = args.output or default_output(scenario)
    results: list[StepResult] = []
    interrupted = False
    try:
        asyncio.run(
            run_scenario(
                scenario,
                sizes,
                args.workers,
                args.url,
                secret,
                args.issuer,
                baseline=not args.no_baseline,
                results=results,
                compare_workers=[int(w) for w in args.compare_workers.split(",")]
                if args.compare_workers
                else None,
                compare_udp=args.compare_udp,
                compare_joins=args.compare_joins,
                compare_janus=args.compare_janus,
            )
        )
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: writing the steps finished so far", file=sys.stderr)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"\nerror: {exc}; writing the steps finished so far", file=sys.stderr)
        write_report(scenario, results, output, interrupted=True)
        return 1
    paths = write_report(scenario, results, output, interrupted=interrupted)
    print((output / "report.md").read_text())
    print("written: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 130 if interrupted else 0


def _soak(scenario: Scenario, rooms: int, workers: int, output: Path) -> int:
    from benchmarks import soak, soak_report  # noqa: PLC0415 - its own runner

    result = soak.SoakResult(scenario.name, rooms, scenario.duration, 0, soak.EMPTY, None)
    interrupted = False
    try:
        asyncio.run(soak.run_soak(scenario, rooms, workers, result))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: writing the samples so far", file=sys.stderr)
    paths = soak_report.write(scenario, result, output, interrupted)
    print(paths["markdown"].read_text())
    print("written: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 130 if interrupted else 0


def _path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    return SCENARIO_DIR / f"{name_or_path}.yaml" if not path.suffix else path


def _kind(name_or_path: str) -> str | None:
    try:
        data = yaml.safe_load(_path(name_or_path).read_text())
    except OSError:
        return None
    return data.get("kind") if isinstance(data, dict) else None


def _description(path: Path) -> str:
    if _kind(str(path)) in ("weak_link", "browser_weak_link", "e2ee_cpu"):
        return str(yaml.safe_load(path.read_text()).get("description", ""))
    return Scenario.load(path.stem).description


if __name__ == "__main__":
    sys.exit(main())
