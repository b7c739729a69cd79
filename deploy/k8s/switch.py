"""Blue-green switch on Kubernetes: ``mlops bluegreen`` with the Kubernetes router (kubectl on the PATH).

    python deploy/k8s/switch.py switch 7 --reason "v7 passed the gate"  # pin the idle colour to 7, check, then
                                                                        # move the Service and champion together
    python deploy/k8s/switch.py rollback --reason "v7 misbehaves"       # back to the other colour and its version
    python deploy/k8s/switch.py status                                   # live colour and each colour's pin

A failed check exits with code 2 and the reason on one line; the Service and the alias stay where they were.
The procedure is ``tooling/bluegreen.py``; kubectl's namespace is ``MLOPS_BLUEGREEN__NAMESPACE`` (``mlops``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    os.environ["MLOPS_BLUEGREEN__ROUTER"] = "kubernetes"
    from tooling.cli import app

    app(["bluegreen", *sys.argv[1:]], prog_name="switch.py")


if __name__ == "__main__":
    main()
