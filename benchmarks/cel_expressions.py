"""CEL evaluation speed: facegate's native compiler vs cel-python's interpreter vs hand-written Python.

    .venv/bin/python benchmarks/cel_expressions.py [--quick]

Twenty-five conditions of the kind face-recognition policies contain (sensitive
attributes, consent, minors, private places, retention...) compiled against the request
schema v1, evaluated as one decision (all 25 conditions, one shared budget) per request
over a rotating set of requests.  Reported: the median time per decision for

- **native**: ``facegate.cel`` programs (``Program.run``), one ``Budget`` per decision;
- **interpreter**: cel-python 0.5.0, the activation converted once per decision
  (``celpy.json_to_cel``), then each program evaluated (errors caught);
- **hand-written**: the same conditions as Python lambdas on the request dict -- the floor;

and the ratios between them, all measured in the same run.  Nothing here is asserted:
performance claims quote this output.  The lambdas match the CEL conditions on valid
requests (``tests/cel/test_cel_benchmark_conditions.py`` checks that); where CEL yields an
error (a field the condition reads without ``has()``) they answer ``False``.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "engine") not in sys.path:
    sys.path.insert(0, str(ROOT / "engine"))

SENSITIVE = ("race", "ethnicity", "religion", "health", "sexual_orientation", "political_opinion")
PRIVATE_KINDS = ("hotel_room", "public_bath", "changing_room", "toilet")
_CN_REGION = re.compile(r"^CN-[0-9A-Z]{2,3}$")
PUBLIC_SECTORS = (
    "hotel",
    "bank",
    "station",
    "airport",
    "stadium",
    "exhibition_hall",
    "museum",
    "art_gallery",
    "library",
)

Request = Mapping[str, Any]


def _get(r: Request, *path: str) -> Any:
    for name in path:
        if not isinstance(r, Mapping) or name not in r:
            return None
        r = r[name]
    return r


#: (CEL condition, hand-written equivalent on the request dict)
CONDITIONS: list[tuple[str, Callable[[Request], bool]]] = [
    (
        (
            'request.operation == "analyze" && has(request.attributes) && request.attributes.exists(a, a in '
            '["race", "ethnicity", "religion", "health", "sexual_orientation", "political_opinion"])'
        ),
        lambda r: r["operation"] == "analyze" and any(a in SENSITIVE for a in r.get("attributes", ())),
    ),
    (
        (
            'request.operation == "analyze" && request.attributes.exists(a, a in ["race", "ethnicity"]) && '
            '!(has(request.consent.type) && request.consent.type == "separate")'
        ),
        lambda r: (
            r["operation"] == "analyze"
            and any(a in ("race", "ethnicity") for a in r.get("attributes", ()))
            and r.get("consent", {}).get("type") != "separate"
        ),
    ),
    (
        (
            'has(request.place) && request.place.type == "private_space" && has(request.place.private_kind) && '
            'request.place.private_kind in ["hotel_room", "public_bath", "changing_room", "toilet"]'
        ),
        lambda r: (
            "place" in r
            and r["place"].get("type") == "private_space"
            and r["place"].get("private_kind") in PRIVATE_KINDS
        ),
    ),
    (
        (
            'request.operation in ["identify", "enroll"] && has(request.capture) && has(request.capture.mode) && '
            'request.capture.mode == "remote_passive" && !(has(request.legal_basis) && '
            'has(request.legal_basis.ground) && request.legal_basis.ground in ["law_requires", "public_security"])'
        ),
        lambda r: (
            r["operation"] in ("identify", "enroll")
            and r.get("capture", {}).get("mode") == "remote_passive"
            and r.get("legal_basis", {}).get("ground") not in ("law_requires", "public_security")
        ),
    ),
    (
        (
            "has(request.subject) && has(request.subject.age) && request.subject.age < 14 && "
            '!(has(request.consent) && has(request.consent.given_by) && request.consent.given_by == "guardian")'
        ),
        lambda r: (
            r.get("subject", {}).get("age", 99) < 14 and r.get("consent", {}).get("given_by") != "guardian"
        ),
    ),
    (
        "has(request.consent) && has(request.consent.withdrawn) && request.consent.withdrawn",
        lambda r: r.get("consent", {}).get("withdrawn") is True,
    ),
    (
        'request.purpose == "marketing" && request.operation != "detect"',
        lambda r: r["purpose"] == "marketing" and r["operation"] != "detect",
    ),
    (
        (
            "has(request.actor) && has(request.actor.stored_persons) && request.actor.stored_persons >= 100000 && "
            '!(has(request.actor.filing) && request.actor.filing == "filed")'
        ),
        lambda r: (
            r.get("actor", {}).get("stored_persons", 0) >= 100000 and r["actor"].get("filing") != "filed"
        ),
    ),
    (
        (
            'has(request.storage) && has(request.storage.raw_image) && request.storage.raw_image == "retain" && '
            '!(has(request.consent) && has(request.consent.type) && request.consent.type in ["separate", "written"])'
        ),
        lambda r: (
            r.get("storage", {}).get("raw_image") == "retain"
            and r.get("consent", {}).get("type") not in ("separate", "written")
        ),
    ),
    (
        'has(request.storage) && has(request.storage.location) && request.storage.location == "cross_border"',
        lambda r: r.get("storage", {}).get("location") == "cross_border",
    ),
    (
        (
            'has(request.place) && request.place.type == "public_place" && '
            "!(has(request.place.signage) && request.place.signage)"
        ),
        lambda r: (
            "place" in r
            and r["place"].get("type") == "public_place"
            and r["place"].get("signage") is not True
        ),
    ),
    (
        (
            "has(request.subject) && has(request.subject.declined_face) && request.subject.declined_face && "
            "!(has(request.alternative) && has(request.alternative.offered) && request.alternative.offered)"
        ),
        lambda r: (
            r.get("subject", {}).get("declined_face") is True
            and r.get("alternative", {}).get("offered") is not True
        ),
    ),
    (
        (
            'request.purpose in ["identity_verification", "access_control", "payment"] && has(request.consent) && '
            "has(request.consent.purposes) && !(request.purpose in request.consent.purposes)"
        ),
        lambda r: (
            r["purpose"] in ("identity_verification", "access_control", "payment")
            and "purposes" in r.get("consent", {})
            and r["purpose"] not in r["consent"]["purposes"]
        ),
    ),
    (
        (
            "has(request.actor) && has(request.actor.pia) && !(has(request.actor.pia.completed) && "
            "request.actor.pia.completed && has(request.actor.pia.covers_purpose) && request.actor.pia.covers_purpose)"
        ),
        lambda r: (
            "pia" in r.get("actor", {})
            and not (
                r["actor"]["pia"].get("completed") is True and r["actor"]["pia"].get("covers_purpose") is True
            )
        ),
    ),
    (
        (
            "has(request.storage) && has(request.storage.retention_days) && request.storage.retention_days > 30 && "
            'request.purpose != "law_enforcement"'
        ),
        lambda r: r.get("storage", {}).get("retention_days", 0) > 30 and r["purpose"] != "law_enforcement",
    ),
    (
        'has(request.capture) && has(request.capture.source) && request.capture.source == "internet_scrape"',
        lambda r: r.get("capture", {}).get("source") == "internet_scrape",
    ),
    (
        'has(request.jurisdiction) && request.jurisdiction.startsWith("CN")',
        lambda r: r.get("jurisdiction", "").startswith("CN"),
    ),
    (
        'has(request.jurisdiction) && request.jurisdiction.matches("^CN-[0-9A-Z]{2,3}$")',
        lambda r: _CN_REGION.search(r.get("jurisdiction", "")) is not None,
    ),
    (
        (
            'request.operation == "identify" && has(request.review) && '
            "!(has(request.review.human_review) && request.review.human_review)"
        ),
        lambda r: (
            r["operation"] == "identify" and "review" in r and r["review"].get("human_review") is not True
        ),
    ),
    (
        (
            'has(request.consent) && has(request.consent.type) && request.consent.type == "bundled" && '
            'request.operation in ["identify", "enroll", "analyze"]'
        ),
        lambda r: (
            r.get("consent", {}).get("type") == "bundled"
            and r["operation"] in ("identify", "enroll", "analyze")
        ),
    ),
    (
        "has(request.attributes) && size(request.attributes) > 3",
        lambda r: len(r.get("attributes", ())) > 3,
    ),
    (
        (
            'has(request.actor) && has(request.actor.role) && request.actor.role == "property_manager" && '
            'request.purpose == "real_estate_disposal"'
        ),
        lambda r: (
            r.get("actor", {}).get("role") == "property_manager" and r["purpose"] == "real_estate_disposal"
        ),
    ),
    (
        (
            "has(request.actor) && has(request.actor.sector) && request.actor.sector in "
            '["hotel", "bank", "station", "airport", "stadium", "exhibition_hall", "museum", "art_gallery", "library"]'
            ' && request.operation == "identify" && '
            "!(has(request.alternative) && has(request.alternative.offered) && request.alternative.offered)"
        ),
        lambda r: (
            r.get("actor", {}).get("sector") in PUBLIC_SECTORS
            and r["operation"] == "identify"
            and r.get("alternative", {}).get("offered") is not True
        ),
    ),
    (
        (
            "has(request.capture) && has(request.capture.realtime) && request.capture.realtime && "
            "has(request.storage) && has(request.storage.transmit_over_internet) && request.storage.transmit_over_internet"
        ),
        lambda r: (
            r.get("capture", {}).get("realtime") is True
            and r.get("storage", {}).get("transmit_over_internet") is True
        ),
    ),
    (
        'has(request.attributes) && request.attributes.all(a, a in ["age", "gender", "emotion"])',
        lambda r: "attributes" in r and all(a in ("age", "gender", "emotion") for a in r["attributes"]),
    ),
]

#: Requests a decision sees: valid against request.v1, from bare to fully described.
REQUESTS: list[dict[str, Any]] = [
    {"operation": "verify", "purpose": "identity_verification"},
    {
        "operation": "analyze",
        "purpose": "research",
        "attributes": ["age", "race"],
        "consent": {"type": "separate", "given_by": "subject", "purposes": ["research"]},
        "jurisdiction": "CN-BJ",
    },
    {
        "operation": "identify",
        "purpose": "access_control",
        "jurisdiction": "CN",
        "actor": {
            "role": "business_premises",
            "sector": "hotel",
            "stored_persons": 250000,
            "filing": "none",
            "pia": {"completed": True, "covers_purpose": False},
        },
        "place": {"type": "public_place", "signage": False},
        "capture": {"mode": "remote_passive", "source": "camera", "realtime": True},
        "consent": {"type": "bundled", "purposes": ["payment"], "withdrawn": False},
        "alternative": {"offered": False},
        "storage": {
            "raw_image": "retain",
            "location": "cross_border",
            "transmit_over_internet": True,
            "retention_days": 90,
        },
        "review": {"human_review": False},
        "subject": {"age": 12, "declined_face": True},
    },
    {
        "operation": "enroll",
        "purpose": "attendance",
        "actor": {"role": "handler", "sector": "school", "stored_persons": 800},
        "subject": {"age": 16},
        "consent": {"type": "written", "given_by": "guardian"},
        "storage": {"raw_image": "discard", "location": "on_device", "retention_days": 30},
    },
    {
        "operation": "analyze",
        "purpose": "marketing",
        "attributes": ["age", "gender", "emotion"],
        "place": {"type": "private_space", "private_kind": "changing_room"},
    },
    {
        "operation": "detect",
        "purpose": "public_security",
        "legal_basis": {"ground": "public_security", "citation": "art. 26"},
        "capture": {"mode": "remote_passive", "source": "internet_scrape"},
    },
]


def activation_schema(request_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of a CEL activation whose one variable is ``request``."""
    return {"type": "object", "properties": {"request": request_schema}, "additionalProperties": False}


def load_request_schema() -> dict[str, Any]:
    path = ROOT / "engine" / "facegate" / "schemas" / "request.v1.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _median_per_decision(run_round: Callable[[], None], decisions_per_round: int, rounds: int) -> float:
    """Median over ``rounds`` of the mean time of one decision, in microseconds."""
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter_ns()
            run_round()
            samples.append((time.perf_counter_ns() - start) / decisions_per_round / 1000)
    finally:
        if gc_was:
            gc.enable()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    options = parser.parse_args()

    import celpy

    from facegate import cel

    schema = activation_schema(load_request_schema())
    texts = [text for text, _ in CONDITIONS]
    lambdas = [fn for _, fn in CONDITIONS]

    start = time.perf_counter()
    programs = [cel.compile(text, schema=schema) for text in texts]  # builds the parser too
    compile_ms = (time.perf_counter() - start) * 1000
    warm_start = time.perf_counter()
    programs = [cel.compile(text, schema=schema) for text in texts]
    warm_ms = (time.perf_counter() - warm_start) * 1000
    tracemalloc.start()
    measured = [cel.compile(text, schema=schema) for text in texts]
    size, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del measured

    env = celpy.Environment()
    interpreted = [env.program(env.compile(text)) for text in texts]
    activations = [{"request": r} for r in REQUESTS]

    def native_round() -> None:
        for act in activations:
            budget = cel.Budget(10_000)
            for program in programs:
                program.run(act, budget)

    def hand_round() -> None:
        for act in activations:
            request = act["request"]
            for fn in lambdas:
                try:
                    fn(request)
                except (KeyError, TypeError):
                    pass

    def interpreter_round() -> None:
        for act in activations:
            context = {"request": celpy.json_to_cel(act["request"])}
            for program in interpreted:
                try:
                    program.evaluate(context)
                except Exception:  # noqa: BLE001, S110 - cel-python raises its evaluation errors
                    pass

    n = len(activations)
    rounds = 5 if options.quick else 41
    native_round()
    hand_round()
    native = _median_per_decision(native_round, n, rounds * 10)
    hand = _median_per_decision(hand_round, n, rounds * 10)
    interpreter = _median_per_decision(interpreter_round, n, max(3, rounds // 8))

    results = [p.run(a) for a in activations for p in programs]
    errors = sum(type(r) is cel.CELError for r in results)
    print(f"facegate.cel benchmark: {len(programs)} conditions per decision, {n} requests rotating")
    print(f"python {sys.version.split()[0]}, cel-python {getattr(celpy, '__version__', '0.5.0')}")
    print(
        f"compile: {compile_ms:.0f} ms cold (parser construction included), {warm_ms:.0f} ms warm; "
        f"{size / 1024:.0f} KiB retained, {peak / 1024:.0f} KiB peak"
    )
    print(
        f"results: {len(results) - errors} values, {errors} error values (conditions reading absent fields)"
    )
    print()
    print(f"{'backend':<14}{'median us/decision':>20}{'vs hand-written':>18}{'vs native':>12}")
    for name, value in (("hand-written", hand), ("native", native), ("interpreter", interpreter)):
        print(f"{name:<14}{value:>20.1f}{value / hand:>17.1f}x{value / native:>11.1f}x")
    print()
    print(
        f"native is {interpreter / native:.0f}x faster than cel-python's interpreter "
        f"and {native / hand:.2f}x the hand-written floor"
    )


if __name__ == "__main__":
    main()
