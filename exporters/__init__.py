"""Built-in exporter plugins for ibsim, registered in the ``ibsim.exporters`` entry-point group.

graphite    carbon plaintext (``graphite``), carbon pickle (``graphite_pickle``) and
            graphite-web events (``graphite_events``)
logstash    events (and optionally counter samples) as JSON lines over TCP or datagrams over UDP
prometheus  an HTTP endpoint serving counters under node_exporter's InfiniBand metric names

Each module keeps its wire format in pure functions and its transport in a
class, and its docstring ends with a YAML sample of its options. Plugins may
import only :mod:`ibsim.export` and :mod:`ibsim.errors`; the core never
imports this package (it finds the classes through the entry points).
"""
