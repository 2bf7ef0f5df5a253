"""Log sources, declared once: which landing files a source's logs are, how they are read,
and what the logs themselves do not say.

The registry is one YAML file (`sources.yaml`; its path is the setting FLYWHEEL_SOURCES),
read by every entry point that ingests: the schedule, the new-log sensor, `flywheel run`,
the Dagster launchpad (whose run config still overrides it) and `flywheel sources check`.
README "Bring your own logs" has a worked entry per container. Per source:

    match: "tau_retail/*.json"     glob(s) over a file's path in the day's landing folder; a
                                   file under a folder named after the source is always its
    format / container / compression: declared, or "auto" (detected from the first bytes)
    mapping:   {messages: traj, ...}  openai_chat field paths (OpenAIMapping keys)
    id:        {template: "tau-{task_id}-trial{trial}"} or {content_hash: true}
    coerce:    {reward: number}       a field's value converted from another JSON type
    outcome:   {success_threshold: 1.0, verified_by: environment} or {graded: true, ...}
    constants: {agent_name: ..., task_type: ...}   for fields the logs lack (never overriding)
    tool_catalog: catalogs/x.json     the agent's tools, for logs that do not carry them
    consent:   {may_train: true, scope: training}; undeclared: scope "unknown", no training
    react_in_chat: true               ReAct text in chat turns becomes tool calls and results

A registry that does not validate fails at load with one line naming the source and field.
Files that match no source are read as before: format and container detected, no rules.

Two hooks apply a source to its records, both pure: `prepare` on a JSON record before its
format reads it (id, coercions, consent), `finish` on the parsed trajectory (constants,
catalog tools, ReAct structure, outcome from reward).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any, Literal

import pydantic

from pipeline.core.formats.checks import MISSING
from pipeline.core.formats.containers import COMPRESSIONS, CONTAINERS
from pipeline.core.formats.fields import get_path, split_path
from pipeline.core.formats.guard import RecordError
from pipeline.core.formats.json_lines import json_type
from pipeline.core.formats.openai_chat import OpenAIMapping
from pipeline.core.formats.react_chat import structure_react_steps
from pipeline.core.record import SOURCE_FORMATS, VERIFIED_BY, Consent, Trajectory

UNKNOWN_CONSENT = Consent(may_train=False, scope="unknown")
CONSTANT_FIELDS = ("agent_name", "agent_version", "model", "task_type", "tenant")
COERCIBLE_FIELDS = ("success", "reward", "session_id", "user_id", "task_type", "agent_version")
_TEMPLATE_FIELD = re.compile(r"\{([^{}]+)\}")


# --- the registry file, validated -------------------------------------------------------------


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class IdRule(_Strict):
    template: str | None = None  # "{task_id}-trial{trial}": dotted paths in braces
    content_hash: bool = False  # the sha256 of the record's JSON, keys sorted

    @pydantic.model_validator(mode="after")
    def _one_way(self) -> IdRule:
        if (self.template is None) == (not self.content_hash):
            raise ValueError("give exactly one of template or content_hash: true")
        if self.template is not None:
            try:
                names = [name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None]
            except ValueError as err:
                raise ValueError(f"template {self.template!r}: {err}") from None
            if not names:
                raise ValueError(f"template {self.template!r} names no field in braces")
        return self


class OutcomeRule(_Strict):
    success_threshold: float | None = None  # success = reward >= threshold
    graded: bool = False  # keep the reward as it is; success stays unknown
    verified_by: Literal[VERIFIED_BY] | None = None  # type: ignore[valid-type]

    @pydantic.model_validator(mode="after")
    def _one_way(self) -> OutcomeRule:
        if (self.success_threshold is None) == (not self.graded):
            raise ValueError("give exactly one of success_threshold or graded: true")
        return self


class ConsentRule(_Strict):
    may_train: bool
    scope: str | None = None


class Constants(_Strict):
    agent_name: str | None = None
    agent_version: str | None = None
    model: str | None = None
    task_type: str | None = None
    tenant: str | None = None


class SourceConfig(_Strict):
    description: str = ""
    match: str | list[str]
    format: Literal[("auto", *SOURCE_FORMATS)] = "auto"  # type: ignore[valid-type]
    container: Literal[("auto", *CONTAINERS)] = "auto"  # type: ignore[valid-type]
    compression: Literal[("auto", *COMPRESSIONS)] = "auto"  # type: ignore[valid-type]
    mapping: dict[str, Any] = {}
    id: IdRule | None = None
    coerce: dict[Literal[COERCIBLE_FIELDS], Literal["number", "boolean", "string"]] = {}  # type: ignore[valid-type]
    outcome: OutcomeRule | None = None
    constants: Constants = Constants()
    tool_catalog: str | None = None
    consent: ConsentRule | None = None
    react_in_chat: bool = False

    @pydantic.field_validator("mapping")
    @classmethod
    def _mapping(cls, value: dict[str, Any]) -> dict[str, Any]:
        OpenAIMapping.from_dict(value)  # raises ValueError naming the key
        return value


class RegistryFile(_Strict):
    version: Literal[1]
    sources: dict[str, SourceConfig] = {}


class RegistryError(ValueError):
    """A registry that cannot be used; the message is one line naming the source and field."""


def registry_error(where: str, err: pydantic.ValidationError) -> RegistryError:
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    message = first["msg"].removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == "sources":
        field_path = ".".join(loc[2:]) or "(the entry)"
        return RegistryError(f"{where}: source {loc[1]!r}: {field_path}: {message}")
    return RegistryError(f"{where}: {'.'.join(loc) or '(top level)'}: {message}")


# --- sources, applied to records ----------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    """One source as ingestion applies it. `SourceSpec()` is a file no source declares."""

    name: str = "(undeclared)"
    match: tuple[str, ...] = ()
    format: str = "auto"
    container: str = "auto"
    compression: str = "auto"
    mapping: OpenAIMapping | None = None
    id_rule: IdRule | None = None
    coerce: Mapping[str, str] = field(default_factory=dict)
    outcome: OutcomeRule | None = None
    constants: Mapping[str, str] = field(default_factory=dict)
    tools: tuple[dict[str, Any], ...] = ()  # from the tool catalog
    consent: Consent | None = None  # None: records without consent keep what they say
    react_in_chat: bool = False
    declared: bool = False  # False: a file no source claims, read with no hooks, as before

    @classmethod
    def from_config(cls, name: str, config: SourceConfig, tools: list[dict[str, Any]]) -> SourceSpec:
        return cls(
            name=name,
            match=(config.match,) if isinstance(config.match, str) else tuple(config.match),
            format=config.format,
            container=config.container,
            compression=config.compression,
            mapping=OpenAIMapping.from_dict(config.mapping) if config.mapping else None,
            id_rule=config.id,
            coerce=dict(config.coerce),
            outcome=config.outcome,
            constants={k: v for k, v in config.constants.model_dump().items() if v is not None},
            tools=tuple(tools),
            consent=Consent(config.consent.may_train, config.consent.scope) if config.consent else UNKNOWN_CONSENT,
            react_in_chat=config.react_in_chat,
            declared=True,
        )

    def matches(self, relative_path: str) -> bool:
        return any(fnmatch.fnmatch(relative_path, pattern) for pattern in self.match)

    # -- before a JSON record is read

    def prepare(self, obj: dict[str, Any], key: str | None, paths: Mapping[str, str]) -> dict[str, Any]:
        """The record as its format should read it: its id built and a string, declared
        coercions applied, consent filled in when the record has none. `paths` maps the
        trajectory fields (`id`, `consent`, `reward`, ...) to where this record's format
        keeps them. Raises RecordError (the record is quarantined) when a value it needs is
        missing or cannot be converted."""
        obj = dict(obj)
        id_path = paths["id"]
        if self.id_rule is not None and self.id_rule.content_hash:
            digest = hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
            _put(obj, id_path, f"sha256-{digest[:24]}")
        elif self.id_rule is not None and self.id_rule.template is not None:
            _put(obj, id_path, _fill(self.id_rule.template, obj))
        else:
            value = get_path(obj, id_path)
            if value is MISSING and key is not None:  # a JSON object's records are keyed by id
                _put(obj, id_path, key)
            elif type(value) is int:  # an integer id is still an id
                _put(obj, id_path, str(value))
        for name, kind in self.coerce.items():
            path = paths.get(name)
            value = get_path(obj, path) if path else MISSING
            if value is not MISSING and value is not None:
                _put(obj, path, _coerce(value, kind, path))
        if self.consent is not None and get_path(obj, paths["consent"]) in (MISSING, None):
            _put(obj, paths["consent"], {"may_train": self.consent.may_train, "scope": self.consent.scope})
        return obj

    # -- after a record is read

    def finish(self, t: Trajectory) -> Trajectory:
        """`t` completed with what the source declares: constants for unset fields, the tool
        catalog when the record has no tools, ReAct turns structured, the outcome from the
        reward, and (for formats `prepare` does not see) the consent."""
        changes: dict[str, Any] = {
            name: value for name, value in self.constants.items() if getattr(t, name) is None
        }
        if self.tools and not t.tools:
            changes["tools"] = list(self.tools)
        if self.react_in_chat:
            changes["steps"] = structure_react_steps(t.steps)
        if self.outcome is not None:
            changes["outcome"] = _outcome(t, self.outcome)
        if self.consent is not None and t.consent == Consent():
            changes["consent"] = self.consent
        return replace(t, **changes) if changes else t


def _outcome(t: Trajectory, rule: OutcomeRule) -> Any:
    outcome = t.outcome
    if outcome.reward is None:
        return outcome
    success = outcome.success
    if success is None and rule.success_threshold is not None:
        success = outcome.reward >= rule.success_threshold
    return replace(outcome, success=success, verified_by=outcome.verified_by or rule.verified_by)


def _put(obj: dict[str, Any], path: str, value: Any) -> None:
    """Write `value` at a dotted path, replacing what is there (objects copied on the way, so
    the caller's record is never changed)."""
    *parents, leaf = split_path(path)
    node = obj
    for segment in parents:
        child = node.get(segment)
        if child is not None and not isinstance(child, dict):
            raise RecordError("wrong_type", f"{path}: cannot set a value inside {json_type(child)}")
        node[segment] = child = dict(child or {})
        node = child
    node[leaf] = value


def _fill(template: str, obj: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        found = get_path(obj, match[1])
        if found is MISSING or found is None or isinstance(found, (dict, list)):
            raise RecordError("missing_required_field",
                              f"{match[1]}: the id template {template!r} needs a scalar value here")
        return str(found).lower() if isinstance(found, bool) else str(found)

    return _TEMPLATE_FIELD.sub(value, template)


_TRUE, _FALSE = ("true", "yes", "1", "1.0"), ("false", "no", "0", "0.0")


def _coerce(value: Any, kind: str, path: str) -> Any:
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    if kind == "number":
        if isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise RecordError("wrong_type", f"{path}: {str(value)[:40]!r} is not a number") from None
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in _TRUE + _FALSE:
        return value if isinstance(value, bool) else text in _TRUE
    raise RecordError("wrong_type", f"{path}: {str(value)[:40]!r} is not a boolean")


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRegistry:
    sources: tuple[SourceSpec, ...] = ()
    path: str | None = None  # the file it was read from

    def for_file(self, relative_path: str) -> SourceSpec:
        """The source a landing file belongs to: the one named by its folder, else the first
        whose glob matches, else an undeclared source (everything detected)."""
        folder = PurePosixPath(relative_path).parts[0] if "/" in relative_path else None
        named = next((s for s in self.sources if s.name == folder), None)
        return named or next((s for s in self.sources if s.matches(relative_path)), SourceSpec())

    def get(self, name: str) -> SourceSpec:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        raise KeyError(f"no source {name!r} in {self.path or 'the registry'} (declared: {known})")


def build_registry(raw: Any, where: str, read_catalog: Callable[[str], Any]) -> SourceRegistry:
    """The registry from a YAML file's parsed content (`where` names the file in errors);
    `read_catalog(path)` gives a tool catalog's parsed JSON. Raises RegistryError."""
    try:
        parsed = RegistryFile.model_validate(raw)
    except pydantic.ValidationError as err:
        raise registry_error(where, err) from None
    sources = []
    for name, config in parsed.sources.items():
        tools: list[dict[str, Any]] = []
        if config.tool_catalog is not None:
            try:
                tools = _catalog_tools(read_catalog(config.tool_catalog))
            except (OSError, ValueError) as err:
                raise RegistryError(f"{where}: source {name!r}: tool_catalog: {err}") from None
        sources.append(SourceSpec.from_config(name, config, tools))
    return SourceRegistry(tuple(sources), where)


def _catalog_tools(catalog: Any) -> list[dict[str, Any]]:
    """A catalog is a list of OpenAI function tools, or an object holding one under "tools"."""
    tools = catalog.get("tools") if isinstance(catalog, dict) else catalog
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and isinstance(t.get("function", t).get("name"), str) for t in tools
    ):
        raise ValueError("expected a list of tools ({\"type\": \"function\", \"function\": {\"name\", ...}})")
    # A bare function schema is wrapped the way OpenAI's tools list holds it.
    return [t if "function" in t else {"type": "function", "function": t} for t in tools]
