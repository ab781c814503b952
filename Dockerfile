# coursepulse: `docker build -t coursepulse .`, then
#   docker run -p 8000:8000 -v coursepulse-data:/var/lib/coursepulse coursepulse
# (SQLite in the volume), or with COURSEPULSE_DATABASE_URL=postgresql+asyncpg://... (see deploy/).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY coursepulse ./coursepulse
RUN python -m venv /opt/coursepulse \
    && /opt/coursepulse/bin/pip install ".[otel]"

FROM ${PYTHON_IMAGE}
RUN groupadd --system coursepulse \
    && useradd --system --gid coursepulse --home-dir /var/lib/coursepulse --create-home \
       --shell /usr/sbin/nologin coursepulse
COPY --from=build /opt/coursepulse /opt/coursepulse
ENV PATH=/opt/coursepulse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    COURSEPULSE_HOST=0.0.0.0 \
    COURSEPULSE_PORT=8000 \
    COURSEPULSE_LOG_FORMAT=json \
    COURSEPULSE_DATABASE_URL=sqlite+aiosqlite:////var/lib/coursepulse/coursepulse.db
USER coursepulse
WORKDIR /var/lib/coursepulse
VOLUME ["/var/lib/coursepulse"]
EXPOSE 8000
# Ready: the database answers and takes writes (503 otherwise; /healthz is liveness only).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('COURSEPULSE_PORT', '8000'), timeout=4)"]
# SIGTERM: stop taking connections, finish requests, close websockets with 1001.
STOPSIGNAL SIGTERM
ENTRYPOINT ["coursepulse"]
CMD ["serve"]
