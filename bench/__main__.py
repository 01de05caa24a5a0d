"""Run every benchmark, one after the other, and repeat their ``RESULT`` lines at the end.

    python -m bench [--quick] [--only NAME ...] [--skip NAME ...] [--with-llm]

Each benchmark runs in its own process (``python -m bench.NAME``), so one cannot warm or slow
the next through shared state. ``--quick`` passes smaller sizes (for a smoke run; the figures
in ``bench/README.md`` come from the full sizes). ``bench_llm`` takes about seven minutes and
runs only with ``--with-llm`` (``--quick`` makes it about two).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

BENCHMARKS = {
    "bench_core": ([], ["--events", "5000"]),
    "bench_kafka": ([], ["--events", "5000", "--llm-events", "400"]),
    "bench_pause": ([], ["--rounds", "3"]),
    "bench_storage": ([], ["--events", "500"]),
    "bench_status": ([], ["--events", "5000"]),
    "bench_replay": ([], ["--events", "5000"]),
    "bench_sqs": ([], ["--events", "500"]),
    "bench_integrations": ([], ["--calls", "100"]),
    "bench_llm": ([], ["--quick"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--skip", nargs="+", choices=sorted(BENCHMARKS), default=[])
    parser.add_argument("--with-llm", action="store_true", help="also run bench_llm")
    args = parser.parse_args()
    names = args.only or [n for n in BENCHMARKS if n != "bench_llm" or args.with_llm]
    results: list[str] = []
    failed: list[str] = []
    for name in names:
        if name in args.skip:
            continue
        full, quick = BENCHMARKS[name]
        command = [sys.executable, "-m", f"bench.{name}", *(quick if args.quick else full)]
        print(f"== {' '.join(command[1:])}", flush=True)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("RESULT "):
                results.append(line.rstrip("\n"))
        if proc.wait() != 0:
            failed.append(name)
    print("== results")
    for line in results:
        print(line)
    if failed:
        print(f"== failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
