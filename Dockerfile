# The image every Ratifier process in docker-compose.yml runs: tally, validators, generator.
#   docker build -t ratifier .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# README.m[d]: pyproject names README.md as the long description; copied when present.
COPY pyproject.toml requirements.lock README.m[d] ./
# The user's top-level folders are mapped into the one import root `ratifier` (see pyproject).
COPY ratifier ratifier
COPY streams streams
COPY schemas schemas
COPY validators validators
# The locked versions, as `make` installs them; then the project itself without resolving again.
RUN pip install -r requirements.lock && pip install --no-deps . && rm -rf /src/build

# Never run as root; state (the tally's data dir) lives in the user's home.
# The folder exists in the image, owned by the user, so a named volume mounted there (the
# tally's, in docker-compose.yml) starts with that ownership.
RUN useradd --create-home --uid 10001 ratifier \
    && mkdir /home/ratifier/.state && chown ratifier:ratifier /home/ratifier/.state
USER ratifier
WORKDIR /home/ratifier
ENV RATIFIER_STATE_DIR=/home/ratifier/.state

CMD ["ratifier", "--help"]
