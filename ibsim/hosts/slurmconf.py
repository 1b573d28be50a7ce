"""Slurm's vocabulary, as data: host lists, ``slurm.conf``, and a job's traffic comment.

Pure functions (no Docker, no simulation), so each is tested on its own:

- :func:`expand_hostlist` / :func:`compress_hostlist`: Slurm's compressed
  node lists (``node[001-003,007],gpu1``) to names and back;
- :func:`slurm_conf`: the ``slurm.conf`` of a virtual cluster, for containers
  without systemd or writable cgroups;
- :func:`parse_comment`: ``sbatch --comment "ibsim: pattern=all_to_all
  load=0.6"`` to a traffic job's keys, validated with the same parameter
  specs as the scenario's ``traffic:`` entries.
"""

from __future__ import annotations

import re
import shlex

from ..errors import ScenarioError, lookup
from ..traffic import JOB_PARAMS, PATTERNS, job_params

__all__ = ["expand_hostlist", "compress_hostlist", "slurm_conf", "parse_comment", "COMMENT_PREFIX",
           "TRAFFIC_KEYS", "CONTROLLER"]

#: a job comment that drives traffic starts with this word
COMMENT_PREFIX = "ibsim:"
#: the keys a comment (or ``default_traffic``) may not set: Slurm decides the hosts and the time
_SLURM_OWNS = ("name", "hosts", "start", "stop")
#: the keys a comment may set, besides each pattern's own parameters
TRAFFIC_KEYS = tuple(k for k in JOB_PARAMS if k not in _SLURM_OWNS)
#: the controller's hostname, and its Slurm ``SlurmctldHost``
CONTROLLER = "ctl"

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in host list {text!r}")
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ValueError(f"unbalanced '[' in host list {text!r}")
    out.append("".join(cur))
    return [x.strip() for x in out if x.strip()]


def _expand_one(item: str) -> list[str]:
    m = re.search(r"\[([^\[\]]*)\]", item)
    if m is None:
        if "[" in item or "]" in item:
            raise ValueError(f"bad host list element {item!r}")
        return [item]
    head, tail = item[:m.start()], item[m.end():]
    names = []
    for part in m.group(1).split(","):
        r = _RANGE.match(part.strip())
        if r is None:
            raise ValueError(f"bad range {part!r} in host list element {item!r}")
        lo, hi = r.group(1), r.group(2) or r.group(1)
        if int(hi) < int(lo):
            raise ValueError(f"descending range {part!r} in {item!r}")
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        for i in range(int(lo), int(hi) + 1):
            names.extend(_expand_one(f"{head}{i:0{width}d}{tail}"))
    return names


def expand_hostlist(text: str) -> list[str]:
    """Names of a Slurm host list, in order (``node[001-002],gpu1`` -> three names).

    Raises
    ------
    ValueError
        For a malformed list (unbalanced brackets, a bad range).
    """
    names = []
    for item in _split_top(text or ""):
        names.extend(_expand_one(item))
    return names


def compress_hostlist(names) -> str:
    """The compressed form of host names (consecutive numbers of one prefix and width joined)."""
    groups: dict[tuple[str, int, str], list[int]] = {}
    order: list = []
    plain = []
    for n in names:
        m = re.match(r"^(.*?)(\d+)([^\d]*)$", n)
        if m is None:
            plain.append(n)
            order.append(("plain", n))
            continue
        digits = m.group(2)
        key = (m.group(1), len(digits) if digits.startswith("0") and len(digits) > 1 else 0, m.group(3))
        if key not in groups:
            groups[key] = []
            order.append(("group", key))
        groups[key].append(int(m.group(2)))
    out = []
    for kind, key in order:
        if kind == "plain":
            out.append(key)
            continue
        head, width, tail = key
        nums = sorted(set(groups[key]))
        if len(nums) == 1:
            out.append(f"{head}{nums[0]:0{width}d}{tail}")
            continue
        ranges, start, prev = [], nums[0], nums[0]
        for x in nums[1:] + [None]:
            if x is not None and x == prev + 1:
                prev = x
                continue
            ranges.append(f"{start:0{width}d}" + (f"-{prev:0{width}d}" if prev != start else ""))
            if x is not None:
                start = prev = x
        out.append(f"{head}[{','.join(ranges)}]{tail}")
    return ",".join(out)


def slurm_conf(cluster: str, nodes, *, slurmd_timeout: int = 10, health_check_s: int = 5,
               partition: str = "compute") -> str:
    """The ``slurm.conf`` of a virtual cluster.

    Parameters
    ----------
    cluster : str
        ``ClusterName``.
    nodes : sequence of str
        Slurm node names (the host containers' hostnames); one CPU each, so a
        node runs one job at a time and a job's fabric traffic is its own.
    slurmd_timeout : int
        ``SlurmdTimeout`` [s]: how long a silent node stays up before DOWN.
    health_check_s : int
        ``HealthCheckInterval`` [s] of the IB port health check; 0: none.
    partition : str
        The one (default) partition, with every node.

    Notes
    -----
    No systemd and read-only cgroups in a container: process tracking by
    ``/proc`` (``proctrack/linuxproc``), no task plugin, no accounting.
    The controller's prolog and epilog tell ibsim of every job start and
    end (``PrologSlurmctld``/``EpilogSlurmctld``).
    """
    lines = [
        f"# slurm.conf of the ibsim virtual cluster {cluster!r}; written by ibsim, mounted read-only",
        f"ClusterName={re.sub(r'[^a-z0-9_]', '_', cluster.lower())}",
        f"SlurmctldHost={CONTROLLER}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        "AuthInfo=cred_expire=10",
        "MpiDefault=none",
        "MailProg=/bin/true",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1,bf_interval=1",
        "ReturnToService=2",
        f"SlurmdTimeout={int(slurmd_timeout)}",
        "SlurmctldTimeout=10",
        "InactiveLimit=0",
        "KillWait=5",
        "MinJobAge=300",
        "StateSaveLocation=/var/spool/slurmctld",
        "SlurmdSpoolDir=/var/spool/slurmd",
        "SlurmctldPidFile=/run/slurm/slurmctld.pid",
        "SlurmdPidFile=/run/slurm/slurmd.pid",
        "PrologSlurmctld=/usr/local/lib/ibsim/slurm-prolog",
        "EpilogSlurmctld=/usr/local/lib/ibsim/slurm-epilog",
    ]
    if health_check_s:
        lines += ["HealthCheckProgram=/usr/local/lib/ibsim/ib-health",
                  f"HealthCheckInterval={int(health_check_s)}",
                  "HealthCheckNodeState=ANY"]
    names = list(nodes)
    lines += [f"NodeName={compress_hostlist(names)} CPUs=1 State=UNKNOWN",
              f"PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]
    return "\n".join(lines)


def _value(text: str):
    """A comment value as YAML would read it in the scenario (numbers, lists, words)."""
    import yaml
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if v is None or isinstance(v, dict) else v


def parse_comment(comment: str | None, default: dict | None = None) -> dict | None:
    """A job comment's traffic, validated: ``(pattern, job keys, pattern params)`` as a dict.

    Parameters
    ----------
    comment : str or None
        The job's ``--comment``. Only a comment starting with ``ibsim:`` drives
        traffic: ``ibsim: pattern=incast targets=2 rate=20Gbps``; the keys are
        a scenario traffic entry's (:data:`TRAFFIC_KEYS` and the pattern's own
        parameters); ``name``, ``hosts``, ``start`` and ``stop`` belong to Slurm.
        Keys it leaves out come from ``default``.
    default : dict, optional
        ``cluster.slurm.default_traffic`` (already validated).

    Returns
    -------
    dict or None
        ``{"pattern", "load", "rate", "params"}``; None when neither the comment
        nor ``default`` asks for traffic.

    Raises
    ------
    ScenarioError
        A one-line message naming the bad key or value (it becomes the job's
        ``job_error`` event).
    """
    given: dict = {}
    text = (comment or "").strip()
    if text.lower().startswith(COMMENT_PREFIX):
        body = text[len(COMMENT_PREFIX):]
        try:
            words = shlex.split(body)
        except ValueError as exc:
            raise ScenarioError(f"comment {text!r}: {exc}") from None
        for w in words:
            k, eq, v = w.partition("=")
            if not eq or not k:
                raise ScenarioError(f"comment {text!r}: expected key=value, got {w!r} "
                                    "(e.g. 'ibsim: pattern=all_to_all load=0.6')")
            k = k.strip().replace("-", "_")
            if k in given:
                raise ScenarioError(f"comment {text!r}: {k!r} is given twice")
            given[k] = _value(v)
        if not given:
            raise ScenarioError(f"comment {text!r} names no traffic (e.g. 'ibsim: pattern=all_to_all load=0.6')")
    if not given and not default:
        return None
    merged = {}
    if default:                                         # back to the keys a comment would give
        merged = {"pattern": default["pattern"], **default.get("params", {})}
        merged.update({k: default[k] for k in ("load", "rate") if default.get(k) is not None})
    if given:
        if "pattern" in given and given["pattern"] != merged.get("pattern"):
            merged = {k: v for k, v in merged.items() if k in TRAFFIC_KEYS}     # another pattern's params go
        if ("load" in given or "rate" in given):
            merged.pop("load", None)
            merged.pop("rate", None)
        merged.update(given)
    return traffic_keys(merged, where="comment" if given else "default_traffic")


def traffic_keys(d: dict, *, where: str = "default_traffic") -> dict:
    """Validate a traffic mapping without hosts or times; ``{"pattern", "load", "rate", "params"}``."""
    owned = [k for k in d if k in _SLURM_OWNS]
    if owned:
        raise ScenarioError(f"{where}: {owned[0]!r} is set by Slurm (the job's nodes and run time); "
                            f"use {', '.join(TRAFFIC_KEYS)} and the pattern's parameters")
    if "pattern" not in d:
        raise ScenarioError(f"{where}: no pattern (e.g. pattern=all_to_all)")
    pattern = d["pattern"]
    try:
        lookup(PATTERNS, str(pattern), "traffic pattern")
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc.message}") from None
    rest = {k: v for k, v in d.items() if k != "pattern"}
    if "load" not in rest and "rate" not in rest:
        raise ScenarioError(f"{where}: give load (fraction of the host link, e.g. load=0.5) or rate (e.g. "
                            "rate=40Gbps)")
    if "load" in rest and "rate" in rest:
        raise ScenarioError(f"{where}: give load or rate, not both")
    try:
        common, params = job_params(str(pattern), {"pattern": pattern, **rest})
    except ScenarioError as exc:
        path = getattr(exc, "path", None)
        where_key = f" {path if isinstance(path, str) else '.'.join(map(str, path))}" if path else ""
        raise ScenarioError(f"{where}{where_key}: {exc.message}") from None
    return {"pattern": common["pattern"], "load": common["load"], "rate": common["rate"], "params": params}
