# The image the Kubernetes work pool runs flows in (deploy/k8s/prefect-work-pool/, variable `image`):
# this repository with the environment locked in uv.lock, without the development tools.
#   docker build -f deploy/flows.Dockerfile -t mlops-loop:latest .
# tests/deploy/test_image.py runs this file's COPY and `uv` steps in a temporary directory and a training
# run in the environment they produce (no docker there).
FROM python:3.11-slim

LABEL org.opencontainers.image.title="mlops-loop"

# The uv version scripts/setup.sh installs.
RUN pip install --no-cache-dir uv==0.13.8

ENV UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    DO_NOT_TRACK=true \
    MLFLOW_DISABLE_TELEMETRY=true \
    BENTOML_DO_NOT_TRACK=true
WORKDIR /app

# The locked third-party packages first: a layer that changes only with the lock.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

# Flow runs start in /app: the flows' entrypoints, the GX suite and prefect.yaml are found relative to it.
COPY tooling/ tooling/
COPY flows/ flows/
COPY tasks/ tasks/
COPY stages/ stages/
COPY mlops_core/ mlops_core/
COPY services/ services/
COPY feature_repo/ feature_repo/
COPY great_expectations/ great_expectations/
COPY prefect.yaml ./
RUN uv sync --frozen --no-dev

ENV PATH="/app/.venv/bin:$PATH"
