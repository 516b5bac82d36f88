# SPDX-License-Identifier: Apache-2.0
# Build and run the gateway on Debian 12 with the same install script as development.
FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN scripts/dev deps \
 && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGATEWAY_BUILD_TESTS=OFF -DGATEWAY_BUILD_BENCH=OFF \
 && cmake --build build --parallel "$(nproc)" --target fhir-gateway

FROM debian:12-slim
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libpocofoundation80 libpoconet80 libpocoutil80 libpocoxml80 libpocojson80 \
      libcurl4 libssl3 libsqlite3-0 libpq5 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/gateway gateway
COPY --from=build /src/build/bin/fhir-gateway /usr/local/bin/fhir-gateway
COPY --from=build /src/fhir_profiles /usr/share/fhir-gateway/fhir_profiles
# The sample configuration with auth on (a gateway off loopback must have an `auth` block): one
# admin client whose JWK set is mounted at /etc/fhir-gateway/clients/admin.jwks.json (make one as
# `scripts/dev run` does: docs/ACCESS.md); the signing key is created under the data folder.
COPY --from=build /src/config/docker.json /etc/fhir-gateway/config.json
ENV FHIR_GATEWAY_PROFILES=/usr/share/fhir-gateway/fhir_profiles
USER gateway
WORKDIR /var/lib/gateway
# HTTPS on 8443 with a mounted certificate (docs/ACCESS.md "Transport"): mount a folder holding
# tls.crt (PEM, the certificate then its chain) and tls.key at /etc/fhir-gateway/tls. The base
# URL the gateway publishes (fullUrl, Location, the token endpoint and audience) is the CMD:
#   docker run -p 8443:8443 -v "$PWD/tls:/etc/fhir-gateway/tls:ro" \
#     -v "$PWD/clients:/etc/fhir-gateway/clients:ro" fhir-gateway \
#     --public-base-url https://gateway.example.org:8443
# Behind a TLS-terminating proxy instead: mount a configuration with "allowPlainHttp": true and
# "publicBaseUrl", and replace the entrypoint's TLS flags (docs/ACCESS.md shows the command).
EXPOSE 8443
# Liveness only, from inside the container: the certificate need not name 127.0.0.1 (-k).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD curl -fsSk https://127.0.0.1:8443/healthz || exit 1
ENTRYPOINT ["fhir-gateway", "serve", "--config", "/etc/fhir-gateway/config.json", \
            "--listen", "0.0.0.0:8443", "--data", "/var/lib/gateway/var", \
            "--tls-cert", "/etc/fhir-gateway/tls/tls.crt", "--tls-key", "/etc/fhir-gateway/tls/tls.key"]
CMD ["--public-base-url", "https://localhost:8443"]
