# The DealerCare image: `dealercare serve` by default; the same image runs `dealercare worker`
# and `dealercare db upgrade` (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Writable places for the non-root user: the SQLite default and the trained NLU model.
    DEALERCARE_DATABASE_URL=sqlite:////app/var/dealercare.db \
    DEALERCARE_NLU_MODEL_DIR=/app/var/nlu

RUN groupadd --system --gid 10001 dealercare \
    && useradd --system --uid 10001 --gid dealercare --home-dir /app --shell /usr/sbin/nologin dealercare

WORKDIR /app
COPY . .
RUN pip install . \
    && mkdir -p /app/var \
    && chown -R dealercare:dealercare /app/var

USER dealercare
EXPOSE 8000
CMD ["dealercare", "serve", "--host", "0.0.0.0"]
