#!/usr/bin/python3
"""Run the toml-test conformance suite against a decoder.

    toml_suite.py --decoder PATH --toml 1.1.0|1.0.0 --suite DIR [--jobs N] [--run GLOB]

For every case listed in DIR/files-toml-<version>:
  * valid/<name>.toml must be accepted (exit 0) and its tagged JSON must equal
    valid/<name>.json structurally (see compare());
  * invalid/<name>.toml must be rejected with a non-zero exit status, without crashing:
    death by a signal, a sanitizer exit status (ASan 86, UBSan 87), a sanitizer report on
    stderr or a timeout all count as failures.
With --toml 1.0.0 the decoder gets --toml-1.0. Prints each failure, then a summary line, and
exits 1 if anything failed.
"""

import argparse
import concurrent.futures
import fnmatch
import json
import math
import os
import re
import subprocess
import sys

TIMEOUT = 10  # seconds per case
SANITIZER_EXIT_CODES = {86: "AddressSanitizer/LeakSanitizer", 87: "UndefinedBehaviorSanitizer"}
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: UndefinedBehaviorSanitizer")


class Mismatch(Exception):
    pass


# ---- value normalisation ------------------------------------------------------------------

_TIME = r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_RE = {
    "datetime": re.compile(r"^" + _DATE + r"[Tt ]" + _TIME + r"([Zz]|[+-]\d{2}:\d{2})$"),
    "datetime-local": re.compile(r"^" + _DATE + r"[Tt ]" + _TIME + r"$"),
    "date-local": re.compile(r"^" + _DATE + r"$"),
    "time-local": re.compile(r"^" + _TIME + r"$"),
}


def _frac(digits):
    """Fractional seconds as nanoseconds (truncated to 9 digits)."""
    if not digits:
        return 0
    return int((digits + "000000000")[:9])


def norm_datetime(kind, text):
    m = _RE[kind].match(text)
    if not m:
        raise Mismatch(f"malformed {kind} value {text!r}")
    g = list(m.groups())
    out = []
    if kind in ("datetime", "datetime-local", "date-local"):
        out += [int(g[0]), int(g[1]), int(g[2])]
        g = g[3:]
    if kind != "date-local":
        out += [int(g[0]), int(g[1]), int(g[2] or 0), _frac(g[3])]
        g = g[4:]
    if kind == "datetime":
        off = g[0]
        if off in ("Z", "z"):
            minutes = 0
        else:
            sign = -1 if off[0] == "-" else 1
            minutes = sign * (int(off[1:3]) * 60 + int(off[4:6]))
        out.append(minutes)
    return tuple(out)


def norm_float(text):
    t = text.strip().lower().replace("_", "")
    if t in ("nan", "+nan", "-nan"):
        return math.nan
    if t in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    if t in ("-inf", "-infinity"):
        return -math.inf
    return float(t)


def compare(got, want, path="$"):
    """Raise Mismatch if the decoder output `got` differs from the expected `want`."""
    if isinstance(want, dict) and set(want.keys()) == {"type", "value"} and \
            isinstance(want.get("value"), str) and isinstance(want.get("type"), str):
        if not isinstance(got, dict) or set(got.keys()) != {"type", "value"}:
            raise Mismatch(f"{path}: expected a tagged {want['type']} value, got {got!r}")
        if got["type"] != want["type"]:
            raise Mismatch(f"{path}: type {got['type']!r}, expected {want['type']!r}")
        if not isinstance(got["value"], str):
            raise Mismatch(f"{path}: value {got['value']!r} is not a JSON string")
        kind, gv, wv = want["type"], got["value"], want["value"]
        if kind == "integer":
            try:
                ok = int(gv) == int(wv)
            except ValueError:
                raise Mismatch(f"{path}: bad integer {gv!r} (expected {wv!r})")
        elif kind == "float":
            try:
                g, w = norm_float(gv), norm_float(wv)
            except ValueError:
                raise Mismatch(f"{path}: bad float {gv!r} (expected {wv!r})")
            ok = (math.isnan(g) and math.isnan(w)) or g == w
        elif kind in _RE:
            ok = norm_datetime(kind, gv) == norm_datetime(kind, wv)
        elif kind in ("string", "bool"):
            ok = gv == wv
        else:
            raise Mismatch(f"{path}: unknown type {kind!r} in expected output")
        if not ok:
            raise Mismatch(f"{path}: {kind} {gv!r}, expected {wv!r}")
        return
    if isinstance(want, dict):
        if not isinstance(got, dict):
            raise Mismatch(f"{path}: expected a table, got {type(got).__name__}")
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        if missing or extra:
            raise Mismatch(f"{path}: keys differ: missing {missing}, unexpected {extra}")
        for k in want:
            compare(got[k], want[k], f"{path}.{json.dumps(k, ensure_ascii=False)}")
        return
    if isinstance(want, list):
        if not isinstance(got, list):
            raise Mismatch(f"{path}: expected an array, got {type(got).__name__}")
        if len(got) != len(want):
            raise Mismatch(f"{path}: array has {len(got)} elements, expected {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            compare(g, w, f"{path}[{i}]")
        return
    raise Mismatch(f"{path}: unexpected value {want!r} in expected output")


# ---- running cases ------------------------------------------------------------------------


def run_decoder(cmd, data):
    """Returns (returncode, stdout, stderr, problem) where problem is a crash/timeout text."""
    try:
        proc = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, b"", b"", f"timed out after {TIMEOUT} s"
    rc = proc.returncode
    err = proc.stderr.decode("utf-8", "replace")
    if rc < 0:
        return rc, proc.stdout, proc.stderr, f"killed by signal {-rc}"
    if rc in SANITIZER_EXIT_CODES:
        return rc, proc.stdout, proc.stderr, \
            f"{SANITIZER_EXIT_CODES[rc]} error (exit {rc}): {tail(err)}"
    if rc > 128:
        return rc, proc.stdout, proc.stderr, f"exit status {rc} (crash?): {tail(err)}"
    for marker in SANITIZER_MARKERS:
        if marker in err:
            return rc, proc.stdout, proc.stderr, f"sanitizer report: {tail(err)}"
    return rc, proc.stdout, proc.stderr, None


def tail(text, n=600):
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


def run_valid(cmd, suite, name):
    toml_path = os.path.join(suite, name + ".toml")
    json_path = os.path.join(suite, name + ".json")
    with open(toml_path, "rb") as f:
        data = f.read()
    with open(json_path, "rb") as f:
        want = json.loads(f.read().decode("utf-8"))
    rc, out, err, problem = run_decoder(cmd, data)
    if problem:
        return problem
    if rc != 0:
        return f"rejected valid TOML (exit {rc}): {tail(err.decode('utf-8', 'replace'))}"
    try:
        got = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return f"decoder output is not valid JSON ({e}): {tail(out.decode('utf-8', 'replace'))}"
    try:
        compare(got, want)
    except Mismatch as e:
        return f"wrong output: {e}"
    return None


def run_invalid(cmd, suite, name):
    with open(os.path.join(suite, name + ".toml"), "rb") as f:
        data = f.read()
    rc, out, err, problem = run_decoder(cmd, data)
    if problem:
        return problem
    if rc == 0:
        return f"accepted invalid TOML; output: {tail(out.decode('utf-8', 'replace'), 300)}"
    return None


def list_cases(suite, version):
    listing = os.path.join(suite, f"files-toml-{version}")
    valid, invalid = [], []
    with open(listing, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.endswith(".toml"):
                continue
            name = line[:-len(".toml")]
            if name.startswith("valid/"):
                valid.append(name)
            elif name.startswith("invalid/"):
                invalid.append(name)
    return valid, invalid


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decoder", required=True, help="path of the decoder executable")
    ap.add_argument("--toml", required=True, choices=["1.1.0", "1.0.0"])
    ap.add_argument("--suite", required=True, help="toml-test's tests/ directory")
    ap.add_argument("--jobs", type=int, default=max(2, (os.cpu_count() or 2) * 2))
    ap.add_argument("--run", action="append", default=[],
                    help="only run cases matching this glob (repeatable)")
    args = ap.parse_args()

    cmd = [args.decoder] + (["--toml-1.0"] if args.toml == "1.0.0" else [])
    valid, invalid = list_cases(args.suite, args.toml)
    if args.run:
        keep = lambda n: any(fnmatch.fnmatch(n, g) for g in args.run)  # noqa: E731
        valid = [n for n in valid if keep(n)]
        invalid = [n for n in invalid if keep(n)]
    if not valid and not invalid:
        print(f"no cases found in {args.suite}/files-toml-{args.toml}", file=sys.stderr)
        return 1

    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {}
        for name in valid:
            futures[pool.submit(run_valid, cmd, args.suite, name)] = ("valid", name)
        for name in invalid:
            futures[pool.submit(run_invalid, cmd, args.suite, name)] = ("invalid", name)
        for fut in concurrent.futures.as_completed(futures):
            kind, name = futures[fut]
            try:
                results[(kind, name)] = fut.result()
            except Exception as e:  # a bug in this script or an unreadable case file
                results[(kind, name)] = f"runner error: {e!r}"

    counts = {"valid": [0, 0], "invalid": [0, 0]}
    for (kind, name) in sorted(results):
        problem = results[(kind, name)]
        if problem is None:
            counts[kind][0] += 1
        else:
            counts[kind][1] += 1
            print(f"FAIL {name}: {problem}")
    v, i = counts["valid"], counts["invalid"]
    print(f"toml-test {args.toml}: valid {v[0]} passed, {v[1]} failed; "
          f"invalid {i[0]} passed, {i[1]} failed")
    return 1 if v[1] or i[1] else 0


if __name__ == "__main__":
    sys.exit(main())
