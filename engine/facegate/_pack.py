"""Load phase: a pack folder of YAML documents -> a validated, compiled :class:`Pack`.

Every problem in every file is collected before failing, each with file, line, column and
JSON pointer.  Nothing here runs per request.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import _compile, _schema
from ._yaml import YamlDocument, load_yaml
from .errors import PolicyError, Problem

RULE_GLOBS = ("pack.yaml", "pack.yml", "rules/*.yaml", "rules/*.yml")
ROOTS = ("request", "params")


@dataclass(frozen=True, slots=True)
class Condition:
    """One CEL condition as written (for people) and as compiled (for the engine)."""

    text: str
    expanded: str
    program: _compile.Compiled
    where: tuple[str, int | None, int | None]


@dataclass(frozen=True)
class Rule:
    id: str
    provision: str
    article: str | None
    article_verified: bool
    article_note: str
    effect: str
    mode: str
    when: tuple[Condition, ...]
    unless: tuple[Condition, ...]
    message_en: str
    message_zh: str
    message_expr: Condition | None
    obligations: tuple[dict[str, Any], ...]
    valid_from: str | None
    valid_until: str | None
    review: dict[str, Any]
    text: dict[str, Any]
    title: str
    file: str
    line: int | None
    source: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Provision:
    """A provision accounted for in the pack: enforced by rules, or listed as not enforceable."""

    provision: str
    article: str | None
    article_verified: bool
    article_note: str
    enforceable: bool
    reason: str
    text: dict[str, Any]
    title: str
    review: dict[str, Any]
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Pack:
    root: Path
    meta: dict[str, Any]
    parameters: dict[str, Any]
    parameter_docs: dict[str, dict[str, Any]]
    variables: tuple[dict[str, Any], ...]
    rules: tuple[Rule, ...]
    provisions: tuple[Provision, ...]
    revision: str
    backend: str
    functions: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the CEL functions conditions may call


_VAR_REF = re.compile(r"\bvariables\.([A-Za-z_][A-Za-z0-9_]*)")
_PARAM_REF = re.compile(r"\bparams\.([A-Za-z_][A-Za-z0-9_]*)")
_STRING = re.compile(r"""(?:[rR]?[bB]?|[bB][rR])(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""", re.S)


def _outside_strings(text: str, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    spans = [m.span() for m in _STRING.finditer(text)]
    return [m for m in pattern.finditer(text) if not any(a <= m.start() < b for a, b in spans)]


def _expand(text: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """Inline ``variables.NAME`` references; returns the expanded text and unknown names."""
    unknown: list[str] = []
    out, last = [], 0
    for m in _outside_strings(text, _VAR_REF):
        name = m.group(1)
        if name not in variables:
            unknown.append(name)
            continue
        out.append(text[last : m.start()])
        out.append("(" + variables[name] + ")")
        last = m.end()
    out.append(text[last:])
    return "".join(out), unknown


def _pack_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files: list[Path] = []
    for pattern in RULE_GLOBS:
        files.extend(sorted(root.glob(pattern)))
    return files


def _revision(docs: list[YamlDocument]) -> str:
    canon = json.dumps([[d.path, d.data] for d in docs], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()


class _Loader:
    def __init__(self, root: Path, backend: str, functions: Mapping[str, Any]) -> None:
        self.root = root
        self.backend = backend
        self.functions = functions
        self.problems: list[Problem] = []
        self.compiled: dict[str, _compile.Compiled] = {}
        self.request_schema = _schema.load_schema("request.v1.json")

    def rel(self, path: Path) -> str:
        try:
            base = self.root if self.root.is_dir() else self.root.parent
            return str(path.relative_to(base.parent))
        except ValueError:
            return str(path)

    def load(self) -> Pack:
        if not self.root.exists():
            raise PolicyError([Problem(str(self.root), None, None, "", "policy pack not found")])
        files = _pack_files(self.root)
        if not files:
            raise PolicyError([Problem(str(self.root), None, None, "", "no pack.yaml or rules/*.yaml in this folder")])
        docs: list[YamlDocument] = []
        for path in files:
            doc, problems = load_yaml(path, self.rel(path))
            self.problems.extend(problems)
            if doc is None:
                continue
            found = [doc.problem(p, m) for p, m in _schema.violations("policy.v1.json", doc.data)]
            self.problems.extend(found)
            if not found:
                docs.append(doc)
        if self.problems:
            raise PolicyError(self.problems)
        return self.build(docs)

    def build(self, docs: list[YamlDocument]) -> Pack:
        pack_docs = [d for d in docs if "pack" in d.data]
        if len(pack_docs) != 1:
            where = docs[0].path if docs else str(self.root)
            names = ", ".join(f"`{d.path}`" for d in pack_docs) or "none"
            self.problems.append(Problem(where, None, None, "/pack", f"exactly one document must carry `pack` metadata (found: {names})"))
            raise PolicyError(self.problems)
        meta = pack_docs[0].data["pack"]
        parameters: dict[str, Any] = {}
        parameter_docs: dict[str, dict[str, Any]] = {}
        variables: dict[str, str] = {}
        variable_docs: list[dict[str, Any]] = []
        for doc in docs:
            for name, spec in doc.data.get("parameters", {}).items():
                if name in parameters:
                    self.problems.append(doc.problem(f"/parameters/{name}", f"parameter `{name}` is defined twice"))
                parameters[name] = spec["value"]
                parameter_docs[name] = spec
        self._schema = self._activation_schema(parameters)  # what every condition is checked against
        for doc in docs:
            for i, var in enumerate(doc.data.get("variables", [])):
                ptr = f"/variables/{i}"
                name = var["name"]
                if name in variables:
                    self.problems.append(doc.problem(ptr + "/name", f"variable `{name}` is defined twice"))
                    continue
                cond = self.condition(doc, ptr + "/expression", var["expression"], variables, parameters, f"variable `{name}`")
                if cond is not None:
                    variables[name] = cond.expanded
                variable_docs.append(dict(var))
        rules: list[Rule] = []
        seen: dict[str, str] = {}
        for doc in docs:
            for i, spec in enumerate(doc.data.get("rules", [])):
                rule = self.rule(doc, f"/rules/{i}", spec, variables, parameters)
                if spec["id"] in seen:
                    self.problems.append(doc.problem(f"/rules/{i}/id", f"rule id `{spec['id']}` is already used in `{seen[spec['id']]}`"))
                seen[spec["id"]] = doc.path
                if rule is not None:
                    rules.append(rule)
        provisions = self.provisions(docs, rules)
        if self.problems:
            raise PolicyError(self.problems)
        return Pack(
            root=self.root,
            meta=meta,
            parameters=parameters,
            parameter_docs=parameter_docs,
            variables=tuple(variable_docs),
            rules=tuple(rules),
            provisions=provisions,
            revision=_revision(docs),
            backend=self.backend,
            functions=self.functions,
        )

    def condition(
        self,
        doc: YamlDocument,
        ptr: str,
        text: str,
        variables: Mapping[str, str],
        parameters: Mapping[str, Any],
        what: str,
    ) -> Condition | None:
        line, col = doc.locate(ptr)
        expanded, unknown = _expand(text, variables)
        ok = True
        for name in unknown:
            self.problems.append(doc.problem(ptr, f"{what}: unknown variable `variables.{name}` (define it under `variables` first)"))
            ok = False
        for m in _outside_strings(text, _PARAM_REF):
            if m.group(1) not in parameters:
                self.problems.append(doc.problem(ptr, f"{what}: unknown parameter `params.{m.group(1)}`"))
                ok = False
        if not ok:
            return None
        program = self.compiled.get(expanded)  # one compile per distinct condition (programs are immutable)
        try:
            if program is None:
                if expanded != text:  # syntax errors are located in the text as written, not as expanded
                    _compile.check_syntax(text)
                program = _compile.compile_expression(expanded, schema=self._schema, backend=self.backend, functions=self.functions)
                self.compiled[expanded] = program
        except _compile.CompileError as exc:
            where = f" (expression line {exc.line}, column {exc.column})" if exc.line is not None else ""
            self.problems.append(Problem(doc.path, line, col, ptr, f"{what}: {exc.message}{where}"))
            return None
        return Condition(text, expanded, program, (doc.path, line, col))

    def _activation_schema(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "request": self.request_schema,
                "params": {"type": "object", "additionalProperties": False, "properties": {k: _json_type(v) for k, v in parameters.items()}},
            },
        }

    def conditions(self, doc: YamlDocument, ptr: str, value: Any, variables: Mapping[str, str], parameters: Mapping[str, Any], rule_id: str) -> tuple[Condition, ...] | None:
        items = [value] if isinstance(value, str) else list(value)
        out: list[Condition] = []
        for j, text in enumerate(items):
            p = ptr if isinstance(value, str) else f"{ptr}/{j}"
            cond = self.condition(doc, p, text, variables, parameters, f"rule `{rule_id}`")
            if cond is None:
                return None
            out.append(cond)
        return tuple(out)

    def rule(self, doc: YamlDocument, ptr: str, spec: dict[str, Any], variables: Mapping[str, str], parameters: Mapping[str, Any]) -> Rule | None:
        rid = spec["id"]
        when = self.conditions(doc, ptr + "/when", spec["when"], variables, parameters, rid)
        unless = self.conditions(doc, ptr + "/unless", spec.get("unless", []), variables, parameters, rid) if "unless" in spec else ()
        msg = spec["message"]
        message_expr = None
        if "expression" in msg:
            message_expr = self.condition(doc, ptr + "/message/expression", msg["expression"], variables, parameters, f"rule `{rid}` message")
            if message_expr is None:
                return None
        obligations = tuple(spec.get("obligations", []))
        if obligations and spec["effect"] not in ("obligation", "permit"):
            self.problems.append(doc.problem(ptr + "/obligations", f"rule `{rid}`: only `permit` and `obligation` rules can carry obligations"))
        if spec["effect"] == "obligation" and not obligations:
            self.problems.append(doc.problem(ptr + "/effect", f"rule `{rid}`: an `obligation` rule must list its `obligations`"))
        vf, vu = spec.get("valid_from"), spec.get("valid_until")
        if vf and vu and vu < vf:
            self.problems.append(doc.problem(ptr + "/valid_until", f"rule `{rid}`: `valid_until` {vu} is before `valid_from` {vf}"))
        if when is None or unless is None:
            return None
        line, _ = doc.locate(ptr)
        return Rule(
            id=rid,
            provision=spec["provision"],
            article=spec["article"]["number"],
            article_verified=spec["article"]["verified"],
            article_note=spec["article"].get("note", ""),
            effect=spec["effect"],
            mode=spec.get("mode", "enforce"),
            when=when,
            unless=unless,
            message_en=msg["en"],
            message_zh=msg["zh"],
            message_expr=message_expr,
            obligations=obligations,
            valid_from=vf,
            valid_until=vu,
            review=dict(spec["review"]),
            text=dict(spec["text"]),
            title=spec.get("title", ""),
            file=doc.path,
            line=line,
            source=spec,
        )

    def provisions(self, docs: list[YamlDocument], rules: list[Rule]) -> tuple[Provision, ...]:
        by_prov: dict[str, list[Rule]] = {}
        for r in rules:
            by_prov.setdefault(r.provision, []).append(r)
        out: dict[str, Provision] = {}
        for doc in docs:
            for i, spec in enumerate(doc.data.get("provisions", [])):
                pid = spec["provision"]
                ptr = f"/provisions/{i}"
                if pid in out:
                    self.problems.append(doc.problem(ptr, f"provision `{pid}` is listed twice"))
                    continue
                if spec["enforceable"] and pid not in by_prov:
                    self.problems.append(doc.problem(ptr + "/enforceable", f"provision `{pid}` is marked enforceable but no rule cites it"))
                if not spec["enforceable"] and "reason" not in spec:
                    self.problems.append(doc.problem(ptr, f"provision `{pid}` is not enforceable: give the `reason`"))
                if not spec["enforceable"] and pid in by_prov:
                    names = ", ".join(r.id for r in by_prov[pid])
                    self.problems.append(doc.problem(ptr + "/enforceable", f"provision `{pid}` is marked not enforceable but rules cite it ({names})"))
                out[pid] = Provision(
                    provision=pid,
                    article=spec["article"]["number"],
                    article_verified=spec["article"]["verified"],
                    article_note=spec["article"].get("note", ""),
                    enforceable=spec["enforceable"],
                    reason=spec.get("reason", ""),
                    text=dict(spec["text"]),
                    title=spec.get("title", ""),
                    review=dict(spec.get("review", {})),
                    rules=tuple(r.id for r in by_prov.get(pid, [])),
                )
        for pid, prules in by_prov.items():
            if pid not in out:
                first = prules[0]
                out[pid] = Provision(pid, first.article, first.article_verified, first.article_note, True, "", first.text, first.title, first.review, tuple(r.id for r in prules))
        return tuple(out.values())


def _json_type(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    return {"type": "array"}


def load_pack(path: str | Path, *, backend: str = _compile.DEFAULT_BACKEND, functions: Mapping[str, Any] | None = None) -> Pack:
    if functions is None:
        from ._plugins import builtin_functions

        functions = builtin_functions()
    return _Loader(Path(path), backend, functions).load()
