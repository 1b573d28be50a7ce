"""Exporter protocol, base class, entry-point discovery, specs and command-line shorthands."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import re
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterable, Mapping, Protocol, runtime_checkable

from ..engine.snapshot import Snapshot
from ..errors import ExporterError, ScenarioError, UnknownNameError, lookup
from .options import Option, duration, epoch_value, parse_options
from .transports import ErrorLog

__all__ = ["GROUP", "STAGE_OPTIONS", "ExporterProtocol", "Exporter", "CliFlag", "exporter_names",
           "exporter_class", "build_exporter", "ExporterSpec", "parse_spec", "specs_from_scenario",
           "add_cli_arguments", "specs_from_cli", "parse_host_port", "host_port_flag"]

log = logging.getLogger(__name__)

#: entry-point group of exporter classes
GROUP = "ibsim.exporters"

#: options every exporter accepts, handled by the export stage (not the exporter)
STAGE_OPTIONS = ("every", "epoch")


# ====================================================================== protocol
@runtime_checkable
class ExporterProtocol(Protocol):
    """What the stage needs from an exporter (``stats()`` is optional)."""

    def open(self) -> None: ...

    def write(self, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


# ====================================================================== base class
class Exporter:
    """Convenience base: options parsed from ``OPTIONS``, an :class:`ErrorLog`, empty stats.

    Subclasses set ``name`` (the registry name), ``unit`` (what ``sent``
    counts) and ``OPTIONS``, and implement ``write``. A push exporter keeps
    its sender (TCP, UDP or HTTP, from :mod:`ibsim.export.transports`) in ``transport``;
    the base then closes it (within its stall budget, ``deliver_timeout``) and
    reports its counts, with ``DELIVERY`` (what ``sent`` guarantees, in words).
    """

    #: the exporter's sender, or None (pull exporters)
    transport = None

    name: ClassVar[str] = "exporter"
    unit: ClassVar[str] = "points"
    OPTIONS: ClassVar[dict[str, Option]] = {}
    #: the exporter's command-line shorthand (``--<name> VALUE``), or None
    CLI: ClassVar["CliFlag | None"] = None
    #: what ``sent`` means for this exporter, one line for metadata.json and the summary
    DELIVERY: ClassVar[str] = ""

    def __init__(self, **options):
        self.options = parse_options(self.name, options, self.OPTIONS)
        self.errors = ErrorLog(self.name)

    def open(self) -> None:
        """Prepare the transport (must not raise because a server is down)."""

    def write(self, snapshot: Snapshot) -> None:  # pragma: no cover - abstract
        """Export one snapshot."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush (within the transport's stall budget) and release the transport."""
        if self.transport is not None:
            self.transport.close()

    def delivery(self) -> str:
        """What ``sent`` guarantees (default: ``DELIVERY``)."""
        return self.DELIVERY

    def stats(self) -> dict:
        """Counts of ``unit``: ``sent`` (confirmed), ``unconfirmed``, ``dropped``, ``resent``,
        ``reconnects``; ``errors``; ``waited_s`` (stall budget spent, s); ``delivery`` (the
        guarantee, in words)."""
        t = self.transport
        st = {k: getattr(t, k, 0) if t is not None else 0
              for k in ("sent", "unconfirmed", "dropped", "resent", "reconnects")}
        st["errors"] = self.errors.total
        budget = getattr(t, "budget", None)
        if budget is not None:
            st["waited_s"] = round(budget.spent, 3)
        if self.delivery():
            st["delivery"] = self.delivery()
        return st


# ====================================================================== discovery
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}


def exporter_names() -> list[str]:
    """Names of every installed exporter."""
    return sorted(_entry_points())


def exporter_class(name: str) -> type:
    """The exporter class registered under ``name``.

    Raises
    ------
    UnknownNameError
        Listing the installed exporters and the closest name.
    ExporterError
        When the plugin cannot be imported.
    """
    ep = lookup(_entry_points(), name, "exporter")
    try:
        return ep.load()
    except ImportError as exc:
        raise ExporterError(f"exporter {name!r} ({ep.value}) cannot be imported: {exc}") from exc


def build_exporter(name: str, options: Mapping | None = None):
    """Build exporter ``name`` from its options (stage options ``every``/``epoch`` excluded)."""
    cls = exporter_class(name)
    try:
        return cls(**dict(options or {}))
    except ScenarioError as exc:
        raise ScenarioError(exc.message, path=f"{name}.{exc.path}" if exc.path else name) from None


# ====================================================================== specs
@dataclass(frozen=True)
class ExporterSpec:
    """An exporter to attach: its name, its options, and the stage options.

    ``every`` (seconds) is its observer interval (None: the ``attach``
    default); ``epoch`` pins simulated time 0 to that epoch (None: the run's
    :class:`TimeMap`).
    """

    name: str
    options: Mapping = field(default_factory=dict)
    every: float | None = None
    epoch: float | None = None

    def build(self):
        """A new exporter object."""
        return build_exporter(self.name, self.options)


def parse_spec(item: Mapping, *, source: str | None = None, path: str = "exporters[0]") -> ExporterSpec:
    """One scenario entry: ``{graphite: {host: ..., every: 10s}}`` or ``{name: graphite, host: ...}``.

    The exporter is built once to validate its options.
    """
    if not isinstance(item, Mapping):
        raise ScenarioError(f"expected a mapping like {{graphite: {{host: ..., port: ...}}}}, got {item!r}",
                            source=source, path=path)
    if "name" in item:
        name, opts = item["name"], {k: v for k, v in item.items() if k != "name"}
        where = path
    elif len(item) == 1:
        name, opts = next(iter(item.items()))
        opts = {} if opts is None else opts
        where = f"{path}.{name}"
        if not isinstance(opts, Mapping):
            raise ScenarioError(f"options of {name!r} must be a mapping, got {opts!r}",
                                source=source, path=where)
    else:
        raise ScenarioError("an exporter entry has one key, the exporter name "
                            "({graphite: {...}}), or a 'name' key", source=source, path=path)
    opts = dict(opts)
    try:
        every = duration(opts.pop("every")) if "every" in opts else None
    except ScenarioError as exc:
        raise ScenarioError(exc.message, source=source, path=f"{where}.every") from None
    try:
        epoch = opts.pop("epoch", None)
        epoch = epoch_value(epoch) if epoch is not None else None
    except ScenarioError as exc:
        raise ScenarioError(exc.message, source=source, path=f"{where}.epoch") from None
    spec = ExporterSpec(str(name), opts, every, epoch)
    try:
        spec.build()
    except UnknownNameError as exc:
        raise UnknownNameError(exc.message, source=source, path=path) from None
    except ScenarioError as exc:
        sub = exc.path.split(".", 1)[1] if exc.path and "." in exc.path else None
        raise ScenarioError(exc.message, source=source,
                            path=f"{where}.{sub}" if sub else where) from None
    return spec


def specs_from_scenario(items: Iterable[Mapping] | None, *, source: str | None = None,
                        key: str = "exporters") -> list[ExporterSpec]:
    """The ``exporters:`` list of a scenario as validated specs (errors name file and key path)."""
    if items is None:
        return []
    if not isinstance(items, (list, tuple)):
        raise ScenarioError(f"expected a list of exporters, got {items!r}", source=source, path=key)
    return [parse_spec(it, source=source, path=f"{key}[{i}]") for i, it in enumerate(items)]


def _cli_classes() -> dict[str, type]:
    """Exporters that declare a command-line shorthand, by name (unimportable ones left out)."""
    out = {}
    for name in exporter_names():
        try:
            cls = exporter_class(name)
        except ExporterError as exc:
            log.debug("%s", exc)
            continue
        if getattr(cls, "CLI", None) is not None:
            out[name] = cls
    return out


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add each installed exporter's shorthand (``--graphite``, ``--logstash``, ...), repeatable."""
    g = parser.add_argument_group("exporters (repeatable; scenario 'exporters:' entries add to these)")
    for name, cls in _cli_classes().items():
        g.add_argument("--" + name.replace("_", "-"), dest=name, action="append", default=None,
                       metavar=cls.CLI.metavar, help=cls.CLI.help)


def specs_from_cli(args) -> list[ExporterSpec]:
    """Specs from the exporters' CLI shorthands (an argparse namespace or a mapping of them).

    Each installed exporter with a :class:`CliFlag` is read under its name
    (``graphite``, ``logstash``, ...); each value is None, a string or a list
    of strings, turned into options by the exporter's own parser.

    Raises
    ------
    ScenarioError
        With ``path`` the option (``--logstash``) and the value in the message.
    """
    get = args.get if isinstance(args, Mapping) else (lambda k, d=None: getattr(args, k, d))
    specs = []
    for name, cls in _cli_classes().items():
        values = get(name, None)
        if values is None:
            continue
        opt = "--" + name.replace("_", "-")
        for v in [values] if isinstance(values, str) else values:
            opts = cls.CLI.parse(v, opt)
            try:
                build_exporter(name, opts)
            except ScenarioError as exc:
                raise ScenarioError(f"{v!r}: {exc.message}", path=opt) from None
            specs.append(ExporterSpec(name, opts))
    return specs


# ====================================================================== CLI shorthands
@dataclass(frozen=True)
class CliFlag:
    """A command-line shorthand an exporter declares: ``--<name> VALUE``.

    Attributes
    ----------
    metavar : str
        How the value is shown in ``--help`` (``HOST[:PORT]``).
    help : str
        One line for ``--help``.
    parse : callable
        ``parse(value, option) -> dict`` of exporter options; raises
        :class:`~ibsim.errors.ScenarioError` with ``path=option``.
    """

    metavar: str
    help: str
    parse: Callable[[str, str], dict]


def parse_host_port(value: str, default_port: int | None, opt: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``HOST`` (with ``default_port``) -> ``(host, port)``."""
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", value.strip())
    if not m:
        raise ScenarioError(f"expected HOST:PORT, got {value!r}", path=opt)
    h = m.group(1) or m.group(3)
    p = m.group(2) or m.group(4)
    if p is None:
        if default_port is None:
            raise ScenarioError(f"expected HOST:PORT, got {value!r} (no port)", path=opt)
        p = default_port
    return h, int(p)


def host_port_flag(default_port: int | None, help: str) -> CliFlag:
    """A shorthand ``--<name> HOST[:PORT]`` giving the options ``host`` and ``port``."""
    def parse(v: str, opt: str) -> dict:
        h, p = parse_host_port(v, default_port, opt)
        return {"host": h, "port": p}
    return CliFlag("HOST[:PORT]" if default_port is not None else "HOST:PORT", help, parse)
