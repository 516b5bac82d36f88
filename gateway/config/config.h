// SPDX-License-Identifier: Apache-2.0
#pragma once

// The gateway configuration file (contracts/cli.md), turned into values once at start-up.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/auth/auth_config.h"

namespace fhir::gateway {

struct PayerRoutes {
  std::vector<std::string> codes;               // empty: every billing code
  std::vector<std::string> lines_of_business;   // empty: every line of business
};

// How the gateway talks to one payer or feed endpoint (beside its `secret`).
struct EndpointOptions {
  std::string auth_header_name;   // `authHeader.name`; empty: no header
  std::string auth_header_value;  // `authHeader.value`
  std::string client_cert;        // PEM file: TLS client certificate (mTLS); empty: none
  std::string client_key;         // PEM file: its private key; empty: in client_cert
  std::string ca_file;            // PEM file: CAs to verify the endpoint; empty: the system's
  int64_t batch_window_ms = 0;    // hold deliveries up to this long and send them back to back
};

struct PayerConfig {
  std::string id;
  std::string name;
  std::string format;
  std::string identifier_system;
  std::string identifier_value;
  std::string endpoint;
  std::string secret;  // empty: no X-Signature
  PayerRoutes routes;
  EndpointOptions options;
  // "delta" (a roster row adds or updates one member) or "full" (a roster file is the payer's
  // whole list as of its asOf date: members it no longer lists are ended then).
  std::string roster_mode = "delta";

  bool routesCode(std::string_view code) const;
  bool routesLineOfBusiness(std::string_view line_of_business) const;
};

struct FeedConfig {
  std::string id;
  std::string endpoint;
  std::string secret;
  EndpointOptions options;
  // `client` (contracts/access.md): the `hie` client the feed is bound to; it receives what that
  // client may see. Required when `auth` is configured; empty without `auth`.
  std::string client;
};

struct DeliveryConfig {
  int64_t timeout_ms = 5000;
  int64_t initial_backoff_ms = 500;
  int64_t max_backoff_ms = 300000;
  double give_up_after_hours = 72;
  // Circuit breaker per destination: after this many consecutive failures no request goes to
  // it for the cool-down, then one probe; 0 turns it off.
  int64_t circuit_breaker_failures = 5;
  int64_t circuit_breaker_cool_down_ms = 30000;  // default: 30 s, or maxBackoffMs when smaller
};

// `limits` (contracts/cli.md): what one client or one input may cost the gateway. The defaults are
// safe for an internet-facing instance; every field is positive.
struct LimitsConfig {
  int64_t max_json_depth = 100;             // nesting of objects and arrays in any JSON body: 400
  int64_t header_timeout_ms = 10000;        // request line and headers complete within: 408
  int64_t body_idle_timeout_ms = 30000;     // longest silence inside a body: 408
  int64_t max_header_bytes = 16384;         // request line and headers together: 431
  int64_t max_connections = 512;            // open connections in total: 503 + Retry-After
  int64_t max_connections_per_address = 32; // open connections from one peer address: 429 + Retry-After
  int64_t max_record_bytes = 1 << 20;       // one source record of a payer file: quarantined, truncated
  int64_t max_quarantine_payload_bytes = 1 << 20;  // payload bytes kept per quarantine entry
};

// `igs`: extra FHIR packages for the validator (contracts/cli.md). Either an array of paths, or
// {"packages": [paths], "strictDependencies": bool, "uncheckedBindings": "warning" | "error"}.
struct IgConfig {
  std::vector<std::string> packages;  // package folders, `.tgz` package tarballs or JSON files
  bool strict_dependencies = false;   // a dependency that is not loaded fails start-up
  bool unchecked_bindings_are_errors = false;  // bindings that cannot be checked locally fail
};

// `store` (contracts/cli.md): SQLite under dataDir (the default) or a PostgreSQL database that
// several gateways share (issue 17).
struct StoreConfig {
  std::string kind = "sqlite";  // "sqlite" or "postgresql"
  std::string url;              // postgresql://[user@]host[:port]/database; never with a password
  std::string password_file;    // the password alone in a file (one trailing line break ignored)
  std::string sslmode;          // libpq's: disable, allow, prefer, require, verify-ca, verify-full
  std::string schema = "public";  // extension: the schema holding the tables (one per deployment)
};

// `export` (contracts/cli.md, query.md "Bulk Data export"): how long a finished job's files are
// kept, where NDJSON files are split, how many jobs run at once, how fast each may read, where
// the files live and how long a job's lease lasts.
struct ExportConfig {
  double retention_hours = 24;           // a finished job and its files are removed this long after it ended
  int64_t max_resources_per_file = 100000;
  int64_t max_concurrent_jobs = 2;
  int64_t max_resources_per_second = 0;  // extension: per job; 0 = as fast as the store reads
  // Extensions (issue 17 scale-out): the folder of the jobs' files (empty: <dataDir>/export); with
  // several gateways on one PostgreSQL store, a folder all of them mount. How long a worker's
  // lease on a job lasts unrenewed: another instance takes the job over this long after its
  // holder died.
  std::string dir;
  double lease_seconds = 30;
};

// `scorecard` (an extension, issue 20): how long a scorecard page waits for figures being computed
// for it (gateway/server/scorecard_routes.h). While their last computation took at most
// `quickMs`, a page waits for new figures (up to `quickMs`); once it took longer, at most
// `staleWaitMs`, then it shows the figures there are, marked with their time.
struct ScorecardConfig {
  int64_t quick_ms = 5000;
  int64_t stale_wait_ms = 250;
};

// `tls` (contracts/access.md "Transport"): the listener serves HTTPS with this certificate.
struct TlsConfig {
  std::string cert_file;       // PEM: the server certificate, then its chain
  std::string key_file;        // PEM: its private key
  std::string client_ca_file;  // PEM: CAs of client certificates; set: a client certificate is required
};

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./var";
  int64_t max_body_bytes = 10 * 1024 * 1024;
  std::vector<PayerConfig> payers;
  std::vector<FeedConfig> feeds;
  DeliveryConfig delivery;
  LimitsConfig limits;
  IgConfig igs;
  StoreConfig store;
  ExportConfig export_ = {};             // `export` (a C++ keyword)
  ScorecardConfig scorecard = {};
  std::string public_base_url;           // `publicBaseUrl`, without a trailing '/'; empty: the listen address
  std::optional<TlsConfig> tls;          // `tls`; none: plain HTTP
  bool allow_plain_http = false;         // `allowPlainHttp`: plain HTTP on a non-loopback address
  std::optional<auth::AuthConfig> auth;  // `auth` (gateway/auth); none: the gateway runs open

  const PayerConfig* findPayer(std::string_view id) const;
};

// The base URL clients reach the gateway at, without a trailing '/' ("https://gw.example.org"):
// `publicBaseUrl` when set, otherwise the listen address `host`:`port` (https:// with `tls`).
// Every published URL starts with it: fullUrl and Location (`<base>/fhir/...`), the token
// endpoint and token `aud`, notification bundles. Error for a wildcard listen address (0.0.0.0,
// ::) without `publicBaseUrl`: that is no address a client can use.
Result<std::string> publicBase(const Config& config, const std::string& host, uint16_t port);

// Checks a `publicBaseUrl` as the configuration file's is checked (http(s), no query, fragment or
// wildcard host) and drops its trailing '/'. For `serve --public-base-url`.
Status checkPublicBaseUrl(std::string& url);

// Splits `listen` ("HOST:PORT", "[::1]:PORT") into the host (without brackets) and the port.
// False when it is not of that form.
bool splitListen(const std::string& listen, std::string& host, uint16_t& port);

// Parses configuration JSON. Unknown keys, missing required keys and wrong types are errors
// naming the key by its path (`payers[0].endpoint`).
Result<Config> parseConfig(std::string_view text);
// Reads and parses a configuration file; errors start with the file name.
Result<Config> loadConfig(const std::string& path);

}  // namespace fhir::gateway
