"""OPA Rego adapter for the CAC-2023 benchmark (rego-cpp through ``regopy``).

The module is compiled once into a bundle with one entrypoint; per request the facegate request
is set as the input document and the entrypoint is queried, as an integrator embedding rego-cpp
would.  ``decide`` returns ``(effect, determining)``: the forbids that applied, else the permits.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import regopy

POLICY_FILE = Path(__file__).with_name("cac2023.rego")
ENTRYPOINT = "facegate/cac2023/decision"


class RegoEngine:
    def __init__(self, path: Path = POLICY_FILE) -> None:
        self.interpreter = regopy.Interpreter()
        self.interpreter.add_module(path.name, path.read_text(encoding="utf-8"))
        self.bundle = self.interpreter.build(None, [ENTRYPOINT])
        if not self.bundle.ok():
            raise RuntimeError(f"rego bundle did not build: {self.bundle.node()}")

    def decide(self, request: Mapping[str, Any]) -> tuple[str, list[str]]:
        self.interpreter.set_input(regopy.Input(request))
        output = self.interpreter.query_bundle_entrypoint(self.bundle, ENTRYPOINT)
        if not output.ok():
            raise RuntimeError(f"rego query failed: {output}")
        decision = output[0].expressions[0]
        if decision["allow"]:
            return "permit", list(decision["permit"])
        return "deny", list(decision["deny"])
