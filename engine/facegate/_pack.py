"""Load phase: a pack folder of YAML documents -> a validated, compiled :class:`Pack`.

Every problem in every file is collected before failing, each with file, line, column and
JSON pointer.  Nothing here runs per request.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _compile, _diagnose, _facts, _schema
from ._declared import DEFAULT_GRADES, DeclarationChecks
from ._yaml import YamlDocument, escape_pointer_token, load_yaml
from .errors import PolicyError, Problem

RULE_GLOBS = ("pack.yaml", "pack.yml", "rules/*.yaml", "rules/*.yml")
ROOTS = ("request", "params")
FORMATS = {"facegate/policy/v1": "policy.v1.json", "facegate/policy/v2": "policy.v2.json"}
V1, V2 = "facegate/policy/v1", "facegate/policy/v2"


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
    message_zh: str  # "" when the pack carries no Chinese
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
    messages: dict[str, str] = field(default_factory=dict)  # every language the message is given in


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
    format: str = V1
    #: the request contract conditions were checked against: request.v1.json, or (v2) the core
    #: envelope merged with the facts of the packs loaded together
    request_schema: dict[str, Any] = field(default_factory=lambda: _schema.load_schema("request.v1.json"), repr=False)
    languages: tuple[str, ...] = ("en", "zh")
    required_languages: tuple[str, ...] = ("en", "zh")
    evidence_grades: dict[str, dict[str, str]] = field(default_factory=lambda: dict(DEFAULT_GRADES))
    operations: dict[str, Any] = field(default_factory=dict)  # decide-only operations this pack declares
    facts: dict[str, Any] = field(default_factory=dict)  # facts this pack declares, as written
    governs: dict[str, Any] = field(default_factory=dict)
    lints: tuple[Problem, ...] = ()  # warnings from `facegate check` that do not stop the load

    @property
    def language(self) -> str:
        """The pack's primary language (the first declared)."""
        return self.languages[0]

    def declaration(self) -> _facts.Declaration:
        """The facts and operations this pack declares, to load other packs together with it
        (``load_policy(other, companions=(pack.declaration(),))``)."""
        return _facts.Declaration(str(self.meta["id"]), None, self.facts, self.operations, self.language)


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


def _revision(docs: list[tuple[str, YamlDocument]]) -> str:
    """A hash of the content: each document's data under its path inside the pack, so the same
    pack in any folder (under any folder name) has the same revision."""
    canon = json.dumps(sorted([inner, d.data] for inner, d in docs), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()


class _Loader(DeclarationChecks):
    def __init__(self, root: Path, backend: str, functions: Mapping[str, Any], companions: tuple[_facts.Declaration, ...] = ()) -> None:
        self.root = root
        self.backend = backend
        self.functions = functions
        self.companions = companions
        self.problems: list[Problem] = []
        self.compiled: dict[str, _compile.Compiled] = {}
        self.request_schema = _schema.load_schema("request.v1.json")
        self.format = V1
        self.languages: tuple[str, ...] = ("en", "zh")
        self.required: tuple[str, ...] = ("en", "zh")
        self.grades: Mapping[str, Any] = DEFAULT_GRADES
        self.inner: dict[str, str] = {}  # shown path -> path inside the pack
        self.broken_variables: set[str] = set()  # defined, but failed to compile: no follow-on problems
        self.skip: set[tuple[str, str]] = set()  # (document, "/rules/3"): items whose structure is broken
        self.dropped_pack = False
        self.partial_provisions: set[str] = set()  # provisions cited by a broken rule
        self.broken_parameters: set[str] = set()
        self.lints: list[Problem] = []

    def inside(self, path: Path) -> str:
        base = self.root if self.root.is_dir() else self.root.parent
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            return path.name

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
        formats: dict[str, str] = {}
        for path in files:
            doc, problems = load_yaml(path, self.rel(path), self.root if self.root.is_dir() else None)
            self.problems.extend(problems)
            if doc is None:
                continue
            self.inner[doc.path] = self.inside(path)
            fmt = doc.data.get("format") if isinstance(doc.data, dict) else None
            name = FORMATS.get(fmt, "policy.v1.json") if isinstance(fmt, str) else "policy.v1.json"
            found = [doc.problem(p, m) for p, m in _schema.violations(name, doc.data)]
            if isinstance(fmt, str) and fmt not in FORMATS:
                found = [doc.problem("/format", f"unknown format `{fmt}`; expected one of {', '.join(f'`{f}`' for f in FORMATS)}")]
            self.problems.extend(found)
            broken = _broken_items(found)
            if broken is not None and isinstance(fmt, str) and fmt in FORMATS:
                # structure problems only inside some rules/variables/provisions/parameters: the
                # rest of the document is still checked for meaning (all problems in one run)
                self.skip |= {(doc.path, item) for item in broken}
                docs.append(doc)
                formats.setdefault(fmt, doc.path)
            elif found:
                self.dropped_pack |= "pack" in doc.data if isinstance(doc.data, dict) else False
        if len(formats) > 1:
            listed = ", ".join(f"`{f}` (first in `{p}`)" for f, p in formats.items())
            self.problems.append(Problem(str(self.root), None, None, "/format", f"one pack, one format: found {listed}"))
        if self.dropped_pack or (self.problems and not docs):
            raise PolicyError(self.problems)  # without the pack's metadata, meaning checks would only add noise
        if formats:
            self.format = next(iter(formats))
        return self.build(docs)

    def build(self, docs: list[YamlDocument]) -> Pack:
        pack_docs = [d for d in docs if "pack" in d.data]
        if len(pack_docs) != 1:
            where = docs[0].path if docs else str(self.root)
            names = ", ".join(f"`{d.path}`" for d in pack_docs) or "none"
            self.problems.append(Problem(where, None, None, "/pack", f"exactly one document must carry `pack` metadata (found: {names})"))
            raise PolicyError(self.problems)
        meta = pack_docs[0].data["pack"]
        if self.format == V2:
            self.declare(pack_docs[0], docs)
        parameters: dict[str, Any] = {}
        parameter_docs: dict[str, dict[str, Any]] = {}
        variables: dict[str, str] = {}
        variable_docs: list[dict[str, Any]] = []
        for doc in docs:
            for name, spec in doc.data.get("parameters", {}).items():
                if (doc.path, f"/parameters/{escape_pointer_token(name)}") in self.skip:
                    self.broken_parameters.add(name)  # known, but broken: no "unknown parameter" noise
                    continue
                if name in parameters:
                    self.problems.append(doc.problem(f"/parameters/{name}", f"parameter `{name}` is defined twice"))
                parameters[name] = spec["value"]
                parameter_docs[name] = spec
        self._schema = self._activation_schema(parameters)  # what every condition is checked against
        self._types = _compile.schema_types(self._schema)  # converted once, not once per condition
        for doc in docs:
            for i, var in enumerate(doc.data.get("variables", [])):
                ptr = f"/variables/{i}"
                if (doc.path, ptr) in self.skip:
                    if isinstance(var, dict) and isinstance(var.get("name"), str):
                        self.broken_variables.add(var["name"])
                    continue
                name = var["name"]
                if name in variables:
                    self.problems.append(doc.problem(ptr + "/name", f"variable `{name}` is defined twice"))
                    continue
                cond = self.condition(doc, ptr + "/expression", var["expression"], variables, parameters, f"variable `{name}`")
                if cond is not None:
                    variables[name] = cond.expanded
                else:
                    self.broken_variables.add(name)
                variable_docs.append(dict(var))
        rules: list[Rule] = []
        seen: dict[str, str] = {}
        for doc in docs:
            for i, spec in enumerate(doc.data.get("rules", [])):
                if (doc.path, f"/rules/{i}") in self.skip:
                    if isinstance(spec, dict) and isinstance(spec.get("provision"), str):
                        self.partial_provisions.add(spec["provision"])
                    continue
                rule = self.rule(doc, f"/rules/{i}", spec, variables, parameters)
                if rule is None:
                    self.partial_provisions.add(spec["provision"])
                if spec["id"] in seen:
                    self.problems.append(doc.problem(f"/rules/{i}/id", f"rule id `{spec['id']}` is already used in `{seen[spec['id']]}`"))
                seen[spec["id"]] = doc.path
                if rule is not None:
                    rules.append(rule)
        provisions = self.provisions(docs, rules)
        if self.format == V2:
            self.check_texts(docs)
        if self.problems:
            raise PolicyError(self.problems)
        pack_doc = pack_docs[0].data
        return Pack(
            root=self.root,
            meta=meta,
            parameters=parameters,
            parameter_docs=parameter_docs,
            variables=tuple(variable_docs),
            rules=tuple(rules),
            provisions=provisions,
            revision=_revision([(self.inner.get(d.path, d.path), d) for d in docs]),
            backend=self.backend,
            functions=self.functions,
            format=self.format,
            request_schema=self.request_schema,
            languages=self.languages,
            required_languages=self.required,
            evidence_grades=dict(self.grades),
            operations=dict(pack_doc.get("operations", {})),
            facts=dict(pack_doc.get("facts", {})),
            governs=dict(pack_doc.get("governs", {})),
            lints=tuple(self.lints),
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
            ok = False
            if name in self.broken_variables:
                continue  # its own problem is already reported
            tip = _diagnose.did_you_mean(name, [*variables, *self.broken_variables]) or " (define it under `variables` first)"
            self.problems.append(doc.problem(ptr, f"{what}: unknown variable `variables.{name}`{tip}"))
        for m in _outside_strings(text, _PARAM_REF):
            if m.group(1) in self.broken_parameters:
                ok = False
            elif m.group(1) not in parameters:
                tip = _diagnose.did_you_mean(m.group(1), parameters) or " (define it under `parameters`)"
                self.problems.append(doc.problem(ptr, f"{what}: unknown parameter `params.{m.group(1)}`{tip}"))
                ok = False
        if not ok:
            return None
        program = self.compiled.get(expanded)  # one compile per distinct condition (programs are immutable)
        try:
            if program is None:
                if expanded != text:  # syntax errors are located in the text as written, not as expanded
                    _compile.check_syntax(text)
                program = _compile.compile_expression(expanded, schema=self._types, backend=self.backend, functions=self.functions)
                self.compiled[expanded] = program
        except _compile.CompileError as exc:
            for problem in (exc, *exc.others):  # every problem of the condition, in text order
                where = f" (expression line {problem.line}, column {problem.column})" if problem.line is not None else ""
                message = _diagnose.cel_hint(problem.message, self._schema, variables)
                self.problems.append(Problem(doc.path, line, col, ptr, f"{what}: {message}{where}"))
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

    def conditions(self, doc: YamlDocument, ptr: str, value: Any, variables: Mapping[str, str], parameters: Mapping[str, Any], rule_id: str,
                   guards: tuple[Condition, ...] = ()) -> tuple[Condition, ...] | None:
        """Compile every item (all problems in one run); ``guards``: conditions known to hold
        when these are evaluated (a rule's ``when`` for its ``unless``), for the lint."""
        items = [value] if isinstance(value, str) else list(value)
        out: list[Condition] = []
        failed = False
        for j, text in enumerate(items):  # every item checked: all problems in one run
            p = ptr if isinstance(value, str) else f"{ptr}/{j}"
            cond = self.condition(doc, p, text, variables, parameters, f"rule `{rule_id}`")
            if cond is None:
                failed = True
                continue
            out.append(cond)
        if failed:
            return None
        self.lint(doc, ptr, out, f"rule `{rule_id}`", guards)
        return tuple(out)

    def lint(self, doc: YamlDocument, ptr: str, conds: list[Condition], what: str, guards: tuple[Condition, ...] = ()) -> None:
        """Warnings that do not stop the load: ``has(a.b.c)`` without a guard on ``a.b``."""
        before = "".join(f"({c.expanded}) && " for c in guards)
        joined = before + " && ".join(f"({c.expanded})" for c in conds)  # earlier items guard later ones
        for message in dict.fromkeys(_diagnose.unguarded_has(joined, self._schema, start=len(before))):
            self.lints.append(doc.problem(ptr, f"{what}: {message}"))

    def rule(self, doc: YamlDocument, ptr: str, spec: dict[str, Any], variables: Mapping[str, str], parameters: Mapping[str, Any]) -> Rule | None:
        rid = spec["id"]
        when = self.conditions(doc, ptr + "/when", spec["when"], variables, parameters, rid)
        unless = self.conditions(doc, ptr + "/unless", spec.get("unless", []), variables, parameters, rid, when or ()) if "unless" in spec else ()
        msg = spec["message"]
        messages = {k: v for k, v in msg.items() if k != "expression"}
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
            message_en=messages.get("en") or messages.get(self.languages[0]) or next(iter(messages.values())),
            message_zh=messages.get("zh", ""),
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
            messages=messages,
        )

    def provisions(self, docs: list[YamlDocument], rules: list[Rule]) -> tuple[Provision, ...]:
        by_prov: dict[str, list[Rule]] = {}
        for r in rules:
            by_prov.setdefault(r.provision, []).append(r)
        out: dict[str, Provision] = {}
        for doc in docs:
            for i, spec in enumerate(doc.data.get("provisions", [])):
                ptr = f"/provisions/{i}"
                if (doc.path, ptr) in self.skip:
                    continue
                pid = spec["provision"]
                if pid in out:
                    self.problems.append(doc.problem(ptr, f"provision `{pid}` is listed twice"))
                    continue
                if spec["enforceable"] and pid not in by_prov and pid not in self.partial_provisions:
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


_ITEM = re.compile(r"^/(rules|variables|provisions)/(\d+)(?:/|$)|^/parameters/([^/]+)(?:/|$)")


def _broken_items(found: list[Problem]) -> set[str] | None:
    """The list items (``/rules/3``) that hold every structure problem of a document, or None
    when a problem lies outside any item (the document as a whole is unusable)."""
    items: set[str] = set()
    for problem in found:
        m = _ITEM.match(problem.pointer)
        if m is None:
            return None
        items.add(f"/{m.group(1)}/{m.group(2)}" if m.group(1) else f"/parameters/{m.group(3)}")
    return items


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


def load_pack(
    path: str | Path,
    *,
    backend: str = _compile.DEFAULT_BACKEND,
    functions: Mapping[str, Any] | None = None,
    companions: tuple[_facts.Declaration, ...] = (),
) -> Pack:
    """Load one pack.  ``companions``: the facts and operations of packs loaded together with it
    (format v2), merged into the request contract its conditions are checked against."""
    if functions is None:
        from ._plugins import builtin_functions

        functions = builtin_functions()
    root = Path(path)
    if backend not in _compile.BACKENDS:
        raise PolicyError([Problem(str(root), None, None, "", f"unknown cel backend `{backend}`; expected one of {', '.join(_compile.BACKENDS)}")])
    try:
        return _Loader(root, backend, functions, companions).load()
    except PolicyError:
        raise
    except RecursionError as exc:
        raise PolicyError([Problem(str(root), None, None, "", "the pack is nested too deeply to load")]) from exc
    except Exception as exc:  # fail closed with one error type: whatever else went wrong names the pack
        raise PolicyError([Problem(str(root), None, None, "", f"cannot load the pack: {type(exc).__name__}: {exc}")]) from exc
