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
COPY --from=build /src/config/sample.json /etc/fhir-gateway/config.json
ENV FHIR_GATEWAY_PROFILES=/usr/share/fhir-gateway/fhir_profiles
USER gateway
WORKDIR /var/lib/gateway
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["fhir-gateway", "serve", "--config", "/etc/fhir-gateway/config.json", \
            "--listen", "0.0.0.0:8080", "--data", "/var/lib/gateway/var"]
