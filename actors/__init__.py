"""gocd-mesos: autoscale GoCD build agents on Apache Mesos from the job backlog.

The public surface for ops tooling that embeds the daemon: the actors, the
messages they pass (:mod:`actors.messages`), the configuration types
(:mod:`actors.config`), the clock (:mod:`actors.clock`) and the errors
(:mod:`actors.exceptions`). Submodules are imported on use, so ``import
actors`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
