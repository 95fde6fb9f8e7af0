# mana-credits image: dependencies from uv.lock in a build stage, a slim non-root runtime.
# tests/ops/test_image.py runs the RUN and CMD lines below in a clean folder as a non-root user.
FROM python:3.11-slim-bookworm AS build
ENV UV_PROJECT_ENVIRONMENT=/app/.venv UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN python -m venv .uv && .uv/bin/pip install --quiet --no-cache-dir uv==0.13.9
# Dependencies first (a layer that survives code changes), then the project itself.
RUN .uv/bin/uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN .uv/bin/uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin mana
WORKDIR /app
COPY --from=build --chown=mana:mana /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PORT=3061 MANA_CREDITS_DATA_DIR=/tmp/mana-credits
USER mana
EXPOSE 3061
# No curl or bun in the image: the CLI asks /health itself (exit 0 healthy, 1 not).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["mana-credits", "healthcheck"]
CMD ["mana-credits", "serve"]
