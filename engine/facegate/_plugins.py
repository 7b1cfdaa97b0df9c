"""Plugin loading: pluggy, the ``facegate`` entry-point group, and an operator allow-list.

Built-in defaults register through the same hooks as a vendor's plugin.  ``register()``
callbacks owned here validate everything a plugin hands over and refuse duplicates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .cel._program import _RESERVED_FUNCTIONS as RESERVED_FUNCTIONS
from .errors import PluginError
from .recognition import ATTRIBUTES, OPERATIONS, RecognizerInfo

GROUP = "facegate"
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: Operations built on embeddings: a recognizer declaring one must declare its ``embedding_size``.
EMBEDDING_OPERATIONS = frozenset({"verify", "identify", "enroll"})
MAX_EMBEDDING_SIZE = 2048
CEL_TYPES = frozenset({"bool", "int", "uint", "double", "string", "bytes", "list", "map", "null", "dyn"})


@dataclass(frozen=True)
class CelFunction:
    """A pure function callable from policy conditions, with its declared CEL types."""

    name: str
    impl: Callable[..., Any]
    arg_types: tuple[str, ...]
    result_type: str
    plugin: str = ""


@dataclass
class LoadedPlugin:
    name: str
    distribution: str
    version: str
    allowed: bool
    loaded: bool
    error: str = ""
    recognizers: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)


class Registry:
    """Everything the allowed plugins registered, validated."""

    def __init__(self) -> None:
        self.recognizers: dict[str, RecognizerInfo] = {}
        self.functions: dict[str, CelFunction] = {}
        self.plugins: list[LoadedPlugin] = []
        self.manager = pluggy.PluginManager(GROUP)
        self.manager.add_hookspecs(hookspecs)

    # -- register() callbacks handed to plugins -------------------------------------------
    def _register_recognizer(self, plugin: str) -> Callable[[RecognizerInfo], None]:
        def register(info: RecognizerInfo) -> None:
            validate_recognizer_info(info)
            if info.id in self.recognizers:
                raise PluginError(f"plugin `{plugin}` registers recognizer `{info.id}`, which is already registered")
            self.recognizers[info.id] = info

        return register

    def _register_function(self, plugin: str) -> Callable[..., None]:
        def register(name: str, impl: Callable[..., Any], arg_types: Iterable[str], result_type: str) -> None:
            fn = CelFunction(name, impl, tuple(arg_types), result_type, plugin)
            validate_cel_function(fn)
            if name in self.functions:
                raise PluginError(f"plugin `{plugin}` registers cel function `{name}`, which is already registered")
            self.functions[name] = fn

        return register

    def add(self, module: Any, name: str, distribution: str = "", version: str = "") -> LoadedPlugin:
        """Register one plugin module (or object) and run its registration hooks."""
        entry = LoadedPlugin(name, distribution, version, allowed=True, loaded=False)
        self.plugins.append(entry)
        before_r, before_f = set(self.recognizers), set(self.functions)
        try:
            self.manager.register(module, name=name)
            caller = self.manager.subset_hook_caller
            others = [p for p in self.manager.get_plugins() if p is not module]
            caller("register_recognizers", others)(register=self._register_recognizer(name))
            caller("register_cel_functions", others)(register=self._register_function(name))
        except PluginError as exc:
            self._rollback(module, before_r, before_f)
            entry.error = str(exc)
            raise
        except Exception as exc:
            self._rollback(module, before_r, before_f)
            entry.error = f"plugin `{name}` failed to register: {type(exc).__name__}: {exc}"
            raise PluginError(entry.error) from exc
        entry.loaded = True
        entry.recognizers = sorted(set(self.recognizers) - before_r)
        entry.functions = sorted(set(self.functions) - before_f)
        return entry

    def _rollback(self, module: Any, recognizers: set[str], functions: set[str]) -> None:
        for key in set(self.recognizers) - recognizers:
            del self.recognizers[key]
        for key in set(self.functions) - functions:
            del self.functions[key]
        if self.manager.is_registered(module):
            self.manager.unregister(module)

    @property
    def has_observers(self) -> bool:
        return bool(self.manager.hook.record_decision.get_hookimpls())

    def notify(self, record: Mapping[str, Any]) -> list[str]:
        """Call every ``record_decision`` observer with its own frozen deep copy; failures are collected, never raised.

        A copy per observer: no observer can change what the gate executes, or what another observer sees.
        """
        from .gate._records import frozen

        problems = []
        for impl in self.manager.hook.record_decision.get_hookimpls():
            try:
                impl.function(record=frozen(record))
            except Exception as exc:
                problems.append(f"observer `{impl.plugin_name}` failed: {type(exc).__name__}: {exc}")
        return problems


def validate_recognizer_info(info: Any) -> None:
    if not isinstance(info, RecognizerInfo):
        raise PluginError(f"register() takes a RecognizerInfo, not `{type(info).__name__}`")
    if not isinstance(info.id, str) or not _ID.match(info.id):
        raise PluginError(f"recognizer id `{info.id}` must match {_ID.pattern}")
    if not isinstance(info.version, str) or not info.version:
        raise PluginError(f"recognizer `{info.id}` must declare its version")
    ops = info.capabilities.operations
    unknown = set(ops) - set(OPERATIONS)
    if not ops or unknown:
        raise PluginError(f"recognizer `{info.id}` declares unknown operations {sorted(unknown) or '(none)'}")
    attrs = info.capabilities.attributes
    if set(attrs) - set(ATTRIBUTES):
        raise PluginError(f"recognizer `{info.id}` declares unknown attributes {sorted(set(attrs) - set(ATTRIBUTES))}")
    if ("analyze" in ops) != bool(attrs):
        raise PluginError(f"recognizer `{info.id}`: `analyze` and a non-empty attribute list go together")
    if not callable(info.factory):
        raise PluginError(f"recognizer `{info.id}`: factory is not callable")
    if info.metric not in ("cosine", "euclidean"):
        raise PluginError(f"recognizer `{info.id}`: metric `{info.metric}` must be `cosine` or `euclidean`")
    if not isinstance(info.threshold, (int, float)) or isinstance(info.threshold, bool) or not math.isfinite(info.threshold):
        raise PluginError(f"recognizer `{info.id}`: threshold must be a finite number")
    size = info.embedding_size
    if ops & EMBEDDING_OPERATIONS or size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_EMBEDDING_SIZE:
            raise PluginError(f"recognizer `{info.id}`: embedding_size must be declared as an integer from 1 to {MAX_EMBEDDING_SIZE} "
                              f"(it declares {sorted(ops & EMBEDDING_OPERATIONS) or 'an embedding'}), not `{size}`")
    import jsonschema  # only a recognizer needs it: deciding alone does not load it

    try:
        jsonschema.validators.validator_for(info.config_schema).check_schema(dict(info.config_schema))
    except jsonschema.SchemaError as exc:
        raise PluginError(f"recognizer `{info.id}`: config_schema is not a valid json schema: {exc.message}") from exc


def validate_cel_function(fn: CelFunction) -> None:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", fn.name):
        raise PluginError(f"cel function name `{fn.name}` is not an identifier")
    if not callable(fn.impl):
        raise PluginError(f"cel function `{fn.name}`: impl is not callable")
    if fn.name in RESERVED_FUNCTIONS:
        raise PluginError(f"cel function `{fn.name}` is a standard cel function or macro and cannot be replaced")
    bad = [t for t in (*fn.arg_types, fn.result_type) if t not in CEL_TYPES]
    if bad:
        raise PluginError(f"cel function `{fn.name}`: unknown cel types {bad}; use {sorted(CEL_TYPES)}")


def installed_entry_points() -> list[Any]:
    import importlib.metadata as md  # reads every installed distribution: only when plugins are listed or loaded

    return sorted(md.entry_points(group=GROUP), key=lambda ep: ep.name)


def load_registry(allow: Iterable[str] = (), *, builtins: bool = True, extra: Iterable[tuple[str, Any]] = ()) -> Registry:
    """Build a registry from the built-ins, the allowed entry points, and ``extra`` (name, module) pairs.

    An entry point not on ``allow`` is listed but never imported.  An allowed name that is not
    installed, or a plugin that fails to import or register, raises :class:`PluginError`.
    """
    registry = Registry()
    if builtins:
        from . import _builtins

        registry.add(_builtins, "facegate.builtins", "facegate", _version("facegate"))
    allowed = list(dict.fromkeys(allow))
    found = {ep.name: ep for ep in installed_entry_points()}
    for name, ep in found.items():
        if name not in allowed:
            dist = ep.dist.name if ep.dist else ""
            registry.plugins.append(LoadedPlugin(name, dist, ep.dist.version if ep.dist else "", allowed=False, loaded=False))
    for name in allowed:
        if name not in found:
            raise PluginError(f"allowed plugin `{name}` is not installed (installed: {', '.join(found) or 'none'})")
        ep = found[name]
        try:
            module = ep.load()
        except Exception as exc:
            raise PluginError(f"plugin `{name}` failed to import: {type(exc).__name__}: {exc}") from exc
        registry.add(module, name, ep.dist.name if ep.dist else "", ep.dist.version if ep.dist else "")
    for name, module in extra:
        registry.add(module, name)
    return registry


def _version(dist: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return ""


_BUILTIN: dict[str, CelFunction] | None = None


def builtin_functions() -> dict[str, CelFunction]:
    """The CEL functions of the built-in plugin (registered through the same hook as any plugin)."""
    global _BUILTIN
    if _BUILTIN is None:  # the built-in plugin alone: no entry point is looked at (deciding starts fast)
        from . import _builtins

        registry = Registry()
        registry.add(_builtins, "facegate.builtins", "facegate")
        _BUILTIN = dict(registry.functions)
    return dict(_BUILTIN)
