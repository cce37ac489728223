# digiclinic production image.
#
#   docker build -t digiclinic .
#   docker run -p 8080:8080 -p 40000:40000/udp \
#     -e DIGICLINIC_MEDIA__ICE_ADDRESSES=0.0.0.0 \
#     -e DIGICLINIC_MEDIA__ANNOUNCE__0.0.0.0=<host address> digiclinic
#
# No Docker engine runs on the development machines: scripts/check-dockerfile.sh
# checks this file's invariants and replays its build (the builder stage's RUN
# commands, unchanged) in a fresh Python 3.11 venv, then runs the result as an
# unprivileged user with this HEALTHCHECK and STOPSIGNAL. Keep the builder's RUN
# commands free of absolute paths ($VIRTUAL_ENV and paths relative to WORKDIR
# only) so that the replay can place them in its own temporary image root.

# ---------------------------------------------------------------------------
# builder: a venv at /opt/digiclinic with the project's wheel and its
# dependencies. Every dependency is taken as a binary wheel (--only-binary):
# aiortc, av (PyAV, with its own FFmpeg), pylibsrtp, cryptography, numpy and
# uvloop ship manylinux wheels that bundle their native libraries. The one
# thing compiled is the project's own small C extension (sfu/_sendmmsg.c,
# batched UDP egress; it needs only libc): the builder is the full
# python:3.11 image, which has gcc and the Python headers, and the build
# fails if the extension did not build. The final image needs neither
# compilers nor apt packages.
# ---------------------------------------------------------------------------
FROM python:3.11 AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/digiclinic

WORKDIR /src
# Only what the wheel is built from: README.md (the package's readme) and
# every package of [tool.setuptools] packages in pyproject.toml
# (scripts/check-dockerfile.sh checks that this list is complete).
COPY pyproject.toml README.md ./
COPY signaling/ signaling/
COPY sfu/ sfu/
COPY recording/ recording/
COPY e2ee/ e2ee/
COPY deploy/constraints.txt deploy/constraints.txt

RUN python -m venv "$VIRTUAL_ENV" \
 && "$VIRTUAL_ENV/bin/python" -m pip install --upgrade pip \
 && "$VIRTUAL_ENV/bin/python" -m pip wheel --no-deps --wheel-dir dist . \
 && "$VIRTUAL_ENV/bin/python" -m pip install --only-binary=:all: \
      -c deploy/constraints.txt dist/digiclinic-*.whl \
 && "$VIRTUAL_ENV/bin/python" -I -c "import sfu._sendmmsg"

# ---------------------------------------------------------------------------
# final image: the same base (the venv's python is /usr/local/bin/python3.11
# in both stages, and the venv keeps its path, /opt/digiclinic), no build
# tools, a non-root user with a fixed uid/gid (10001).
# ---------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/digiclinic \
    PATH=/opt/digiclinic/bin:$PATH \
    DIGICLINIC_CONFIG=/etc/digiclinic/config.yaml

# /var/lib/digiclinic: the user's home and working directory; it holds the
# development token secret (auth.dev_secret_file) when no auth.issuers are
# configured. Mount a volume there to keep it across container re-creation.
RUN groupadd --system --gid 10001 digiclinic \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/digiclinic --shell /usr/sbin/nologin digiclinic \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/digiclinic

COPY --from=builder /opt/digiclinic /opt/digiclinic
COPY deploy/config.production.yaml /etc/digiclinic/config.yaml
# the widget, console and their modules, served under /client/ (not the test pages)
COPY web-client/widget/ /opt/digiclinic-web/widget/
COPY web-client/console/ /opt/digiclinic-web/console/
COPY web-client/digiclinic-client.js /opt/digiclinic-web/digiclinic-client.js
COPY web-client/client/ /opt/digiclinic-web/client/

WORKDIR /var/lib/digiclinic
USER 10001:10001

# Signalling: HTTP/WebSocket (server.port). Terminate TLS in front of it, or
# mount a certificate and set server.tls_cert / server.tls_key.
EXPOSE 8080/tcp
# Media (ICE/SRTP): one UDP port for every participant of every room,
# media.udp_port (deploy/config.production.yaml: 40000), published 1:1, the
# same number outside as inside:
#     -p 40000:40000/udp
# because the SFU puts the port it bound into its ICE candidates. (With
# `serve --workers N`, worker i uses 40000 + i: publish 40000-4000<N-1>. With
# media.udp_mode "port_range", publish udp_port_min..udp_port_max instead.)
# media.ice_addresses (DIGICLINIC_MEDIA__ICE_ADDRESSES, required: the
# production config leaves it empty and the server refuses to start without
# it) and media.announce must make the candidates name the host's address that
# clients can reach. The SFU binds its UDP sockets to each ice_addresses entry,
# so on Docker's default bridge network use
#     -e DIGICLINIC_MEDIA__ICE_ADDRESSES=0.0.0.0
#     -e DIGICLINIC_MEDIA__ANNOUNCE__0.0.0.0=<host address>
# or run with --network host (no -p needed) and
#     -e DIGICLINIC_MEDIA__ICE_ADDRESSES=<host address>
# (plus media.announce <host address> -> <public address> behind a 1:1 NAT).
EXPOSE 40000/udp

# Python stdlib only (no curl in the slim image). Follows a port set with
# DIGICLINIC_SERVER__PORT; server.host must include 127.0.0.1 (0.0.0.0 does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DIGICLINIC_SERVER__PORT', '8080'), timeout=4)"]

# SIGINT stops at once (the app's cleanup tells every room room_closed and
# closes the sessions, exit status 0); SIGTERM drains first (participants are
# told to reconnect elsewhere, up to cluster.drain_timeout) and then exits 0:
# Kubernetes sends SIGTERM, `docker stop --signal SIGTERM` does too
# (docs/cluster.md). SIGINT also
# stops the process while it is still importing (Python's default
# KeyboardInterrupt handler), where a SIGTERM to PID 1 would be ignored.
STOPSIGNAL SIGINT

CMD ["digiclinic", "serve"]
