"""The definitions at module level, where Feast's CLI looks for them (``feast -c feature_repo plan|apply``).

Paths and names come from the same environment variables as the project's settings, so Feast's CLI, UI and
feature server open the store the pipeline and the service use.
"""

import os
from datetime import timedelta
from pathlib import Path

from feature_repo import definitions

_store_dir = Path(os.environ.get("MLOPS_STATE_DIR", ".mlops")).resolve() / "features"
_view = os.environ.get("MLOPS_FEATURES__VIEW", definitions.VIEW)

applicant = definitions.applicant_entity()
applicant_features = definitions.applicant_features(
    _view,
    definitions.offline_rows(_store_dir, _view),
    timedelta(days=int(os.environ.get("MLOPS_FEATURES__TTL_DAYS", "0"))),
)
