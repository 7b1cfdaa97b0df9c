"""Request validation on the per-request path: jsonschema-rs vs fastjsonschema vs jsonschema.

    .venv/bin/python benchmarks/request_validation.py

Validates the CAC-2023 pack's case requests against request.v1.json.  facegate uses
jsonschema-rs for the accept path (and the jsonschema library only to explain a rejection);
this run is why.  Ratios are against jsonschema-rs, measured in the same run.
"""

from __future__ import annotations

import platform
import statistics
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    import jsonschema
    import jsonschema_rs

    from facegate._cases import load_cases
    from facegate._schema import load_schema

    schema = load_schema("request.v1.json")
    requests = [case["request"] for case, _, _ in load_cases(ROOT / "policies" / "cn-cac-2023-draft")]
    validators = {"jsonschema-rs (is_valid)": jsonschema_rs.validator_for(schema).is_valid}
    try:
        import fastjsonschema

        fast = fastjsonschema.compile(schema)

        def fast_ok(r: object) -> bool:
            try:
                fast(r)
                return True
            except fastjsonschema.JsonSchemaException:
                return False

        validators["fastjsonschema"] = fast_ok
    except ImportError:
        print("fastjsonschema: not installed (pip install -r benchmarks/requirements.txt)")
    validators["jsonschema (python)"] = jsonschema.validators.validator_for(schema)(schema).is_valid
    answers = {name: [fn(r) for r in requests] for name, fn in validators.items()}
    assert len({tuple(a) for a in answers.values()}) == 1, "validators disagree"
    print(f"python {platform.python_version()} on {platform.machine()}, {len(requests)} requests")
    results = {}
    for name, fn in validators.items():
        number = 20 if "python" in name else 500
        runs = timeit.repeat(lambda fn=fn: [fn(r) for r in requests], number=number, repeat=5)
        per = [t / number / len(requests) * 1e6 for t in runs]
        results[name] = (min(per), statistics.median(per), max(per))
    base = results["jsonschema-rs (is_valid)"][1]
    print(f"{'validator':<28} {'min µs':>8} {'median µs':>10} {'max µs':>8} {'× jsonschema-rs':>16}")
    for name, (lo, med, hi) in results.items():
        print(f"{name:<28} {lo:>8.2f} {med:>10.2f} {hi:>8.2f} {med / base:>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
