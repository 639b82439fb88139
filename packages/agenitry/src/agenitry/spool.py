"""The on-disk spool of undelivered events, for tools: where it is and what waits in it.

Clients write it themselves (see ``spool_dir`` in docs/client.md); ``agenitry spool
status`` and ``agenitry spool flush`` are built on this module.

>>> from agenitry.spool import default_spool_dir, summaries
>>> for scope in summaries(default_spool_dir()):  # doctest: +SKIP
...     print(scope.gateway, scope.venue_id, scope.events)
http://127.0.0.1:8700 nobo-downtown 501
"""

from __future__ import annotations

from agenitry._config import default_spool_dir
from agenitry._spool import ScopeSummary, summaries

__all__ = ["ScopeSummary", "default_spool_dir", "summaries"]
