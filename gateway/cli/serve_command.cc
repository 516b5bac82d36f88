// SPDX-License-Identifier: Apache-2.0
#include <curl/curl.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <optional>

#include "conformance/json/json.h"
#include "conformance/validator/validator.h"
#include "gateway/cli/commands.h"
#include "gateway/cli/runtime.h"
#include "gateway/config/config.h"
#include "gateway/auth/audit.h"
#include "gateway/auth/policy.h"
#include "gateway/export/export_service.h"
#include "gateway/delivery/delivery.h"
#include "gateway/ingest/pipeline.h"
#include "gateway/server/http_server.h"
#include "conformance/common/metrics.h"
#include "gateway/server/transport.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/matching.h"
#include "gateway/subscriptions/subscription.h"
#include "gateway/subscriptions/topics.h"
#include "gateway_paths.h"

namespace fhir::gateway::cli {
namespace {

constexpr const char* kServeHelp =
    "usage: fhir-gateway serve [--config FILE] [--listen HOST:PORT] [--data DIR]\n"
    "                          [--public-base-url URL] [--tls-cert FILE --tls-key FILE]\n"
    "\n"
    "Run the gateway: HTTP ingest, the FHIR API, and delivery to payers and feeds.\n"
    "\n"
    "  --config FILE      configuration JSON (contracts/cli.md); default: no payers, no feeds\n"
    "  --listen HOST:PORT address to serve on, overriding the config; default 127.0.0.1:8080;\n"
    "                     port 0 picks a free port\n"
    "  --data DIR         data directory (SQLite store gateway.db), overriding the config;\n"
    "                     default ./var\n"
    "  --public-base-url URL  the base URL clients reach the gateway at (publicBaseUrl):\n"
    "                     fullUrl, Location, the token endpoint and audience; default the listen\n"
    "                     address (required when listening on 0.0.0.0 or ::)\n"
    "  --tls-cert FILE, --tls-key FILE  serve HTTPS with this PEM certificate (chain) and key\n"
    "                     (tls.certFile, tls.keyFile)\n"
    "\n"
    "A non-loopback listen address needs TLS, or \"allowPlainHttp\": true in the configuration\n"
    "(behind a TLS-terminating proxy; warned about at every start).\n"
    "Once ready it prints one line on stdout: 'listening on http://HOST:PORT' (https:// with TLS).\n"
    "SIGTERM or SIGINT drains in-flight requests and deliveries and stops.\n"
    "Definitions are read from FHIR_GATEWAY_PROFILES (default: the bundled fhir_profiles).\n"
    "FHIR_GATEWAY_CPU_SLOTS: events mapped and validated at once (default: the core count).\n";

// The warm-up's payers: whichever the sample names (so that every sample maps, whatever the
// configuration), with no stored coverage.
class WarmUpDirectory final : public mappers::Directory {
 public:
  std::optional<mappers::PayerInfo> payer(std::string_view payer_id) const override {
    return mappers::PayerInfo{std::string(payer_id), std::string(payer_id), {}, {}};
  }
  std::vector<fhir::CoverageFact> coverageOf(std::string_view) const override { return {}; }
};

// Maps and validates the bundled sample events (mappers/samples: `<spec>.json` one event,
// `<spec>.ndjson` one per line) once, in-process, storing nothing, and runs the subscription
// topics' criteria over the resources made: the caches the first requests would otherwise build
// (validator plans, compiled FHIRPath, terminology expansions, interned spec strings) are built
// before the server listens (issue 12: the first requests took 0.85-1.9 s). Best effort: a
// missing folder or a rejected sample only leaves that cache cold. Returns the events mapped.
size_t warmUp(const Runtime& runtime) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(GATEWAY_SPECS_DIR).parent_path() / "samples";
  std::error_code error;
  size_t mapped_count = 0;
  const WarmUpDirectory directory;
  if (!runtime.specs || !fs::is_directory(dir, error)) return 0;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    const fs::path& path = entry.path();
    const std::string spec = path.stem().string();
    const bool lines = path.extension() == ".ndjson";
    if ((!lines && path.extension() != ".json") || !runtime.specs->has(spec)) continue;
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::vector<std::string> events;
    if (lines) {
      for (std::string line; std::getline(buffer, line);) {
        if (!line.empty()) events.push_back(line);
      }
    } else {
      events.push_back(buffer.str());
    }
    for (const std::string& text : events) {
      auto event = json::parse(text);
      if (!event.ok()) continue;
      mappers::engine::MapOptions options;
      options.source_name = "warm-up";
      options.directory = &directory;
      mappers::engine::MappedBundle mapped;
      IssueList issues;
      auto done = runtime.specs->mapRecord(spec, *event, text, "warm-up", options, mapped, issues);
      if (!done.ok() || !*done) continue;
      ++mapped_count;
      if (runtime.validator) {
        IssueList validation;
        runtime.validator->validate(mapped.bundle, ValidationRequest{}, validation);
      }
      const json::Value* entries = json::find(mapped.bundle, "entry");
      if (!runtime.topics || !entries || !entries->IsArray()) continue;
      for (const json::Value& item : entries->GetArray()) {
        const json::Value* resource = json::find(item, "resource");
        const json::Value* type = resource ? json::find(*resource, "resourceType") : nullptr;
        if (!type || !type->IsString()) continue;
        ResourceChange change{type->GetString(), "warm-up", nullptr, resource};
        for (const Topic& topic : runtime.topics->topics()) runtime.topics->fires(topic, change);
      }
    }
  }
  return mapped_count;
}

// The serve flags that override `publicBaseUrl` and `tls`, then the transport rules of
// contracts/access.md: plain HTTP only on loopback unless `allowPlainHttp` (warned about at
// every start), and a base URL that is not a wildcard address.
Status applyTransport(Config& config, const std::string& host, const std::optional<std::string>& public_base_url,
                      const std::optional<std::string>& tls_cert, const std::optional<std::string>& tls_key, Io& io) {
  if (public_base_url) {
    std::string url = *public_base_url;
    if (Status checked = checkPublicBaseUrl(url); !checked.ok()) {
      return Error{"--public-base-url: " + checked.message()};
    }
    config.public_base_url = url;
  }
  if (tls_cert.has_value() != tls_key.has_value()) return Error{"--tls-cert and --tls-key go together"};
  if (tls_cert) {
    if (!config.tls) config.tls = TlsConfig{};
    config.tls->cert_file = *tls_cert;
    config.tls->key_file = *tls_key;
  }
  if (config.tls) {  // the certificate and key now, not after the definitions have loaded
    auto usable = http::TlsServer::create(*config.tls);
    if (!usable.ok()) return usable.error();
  }
  const bool loopback = http::isLoopbackHost(host);
  if (!config.tls && !loopback && !config.allow_plain_http) {
    return Error{"listening on '" + host + "', which is not a loopback address, needs \"tls\" (or " +
                 "\"allowPlainHttp\": true when a TLS-terminating proxy is in front)"};
  }
  if (!config.tls && config.allow_plain_http) {
    io.err << "fhir-gateway serve: warning: allowPlainHttp: serving plain HTTP on " << host
           << (loopback ? "" : ", which is not a loopback address") << "; only a TLS-terminating proxy in front "
           << "keeps tokens and patient data off the wire\n";
  }
  if (config.tls && config.allow_plain_http) {
    io.err << "fhir-gateway serve: warning: allowPlainHttp has no effect: tls is configured\n";
  }
  auto base = publicBase(config, host, 0);
  if (!base.ok()) return base.error();
  return Status::Ok();
}

}  // namespace

int runServe(const Args& args, Io& io) {
  std::optional<std::string> config_path, listen, data_dir, public_base_url, tls_cert, tls_key;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](std::optional<std::string>& out) {
      if (i + 1 >= args.size()) return false;
      out = args[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      io.out << kServeHelp;
      return 0;
    } else if (arg == "--config") {
      if (!value(config_path)) break;
    } else if (arg == "--listen") {
      if (!value(listen)) break;
    } else if (arg == "--data") {
      if (!value(data_dir)) break;
    } else if (arg == "--public-base-url") {
      if (!value(public_base_url)) break;
    } else if (arg == "--tls-cert") {
      if (!value(tls_cert)) break;
    } else if (arg == "--tls-key") {
      if (!value(tls_key)) break;
    } else {
      io.err << "fhir-gateway serve: unknown argument '" << arg << "' (see --help)\n";
      return 2;
    }
    continue;
  }
  if (!args.empty() && (args.back() == "--config" || args.back() == "--listen" || args.back() == "--data" ||
                        args.back() == "--public-base-url" || args.back() == "--tls-cert" || args.back() == "--tls-key")) {
    io.err << "fhir-gateway serve: " << args.back() << " needs a value\n";
    return 2;
  }

  Config config;
  if (config_path) {
    auto loaded = loadConfig(*config_path);
    if (!loaded.ok()) {
      io.err << "fhir-gateway serve: " << loaded.message() << "\n";
      return 2;
    }
    config = std::move(*loaded);
  }
  if (listen) config.listen = *listen;
  if (data_dir) config.data_dir = *data_dir;
  std::string host;
  uint16_t port = 0;
  if (!splitListen(config.listen, host, port)) {
    io.err << "fhir-gateway serve: '" << config.listen << "' is not HOST:PORT\n";
    return 2;
  }
  if (Status transport = applyTransport(config, host, public_base_url, tls_cert, tls_key, io); !transport.ok()) {
    io.err << "fhir-gateway serve: " << transport.message() << "\n";
    return 2;
  }
  // Without an `auth` block every route answers anyone: only on loopback (access.md).
  if (!config.auth) {
    if (!auth::isLoopbackHost(host)) {
      io.err << "fhir-gateway serve: without an `auth` block the gateway runs open and listens on loopback only; '"
             << config.listen << "' is not a loopback address (configure `auth`, contracts/access.md)\n";
      return 2;
    }
    io.err << "fhir-gateway serve: warning: no `auth` block: every route answers anyone (loopback only)\n";
  }

  // Signals are taken by sigwait below, so block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  auto runtime = loadRuntime(config);
  if (!runtime.ok()) {
    io.err << "fhir-gateway serve: " << runtime.message() << "\n";
    return 2;
  }
  // Every JSON body is parsed through json::parse: one process-wide depth limit covers all routes
  // (set after the bundled definitions are loaded, which it is not meant for).
  json::setMaxDepth(static_cast<size_t>(config.limits.max_json_depth));
  StorePtr& store = (*runtime)->store;
  ValidatorPtr& validator = (*runtime)->validator;
  for (const std::string& warning : validator->startupWarnings()) {
    io.err << "fhir-gateway serve: warning: " << warning << "\n";
  }
  TopicCatalogPtr& topics = (*runtime)->topics;
  SubscriptionRegistry& registry = (*runtime)->registry;

  {
    auto warm_start = std::chrono::steady_clock::now();
    size_t warmed = warmUp(**runtime);
    auto warm_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - warm_start);
    io.err << "fhir-gateway serve: warmed up with " << warmed << " sample events in " << warm_ms.count() << " ms\n";
  }

  Metrics metrics;
  DeliveryService delivery(config, store, metrics);
  // Subscription matching runs on committed changes, off the store's writer (issue 12); an
  // ingest answer waits for the pass that queues its notifications (catchUp).
  SubscriptionMatcher matcher(store, topics, &registry, [&delivery] { delivery.wake(); });
  Pipeline pipeline(config, store, validator, metrics, [&delivery, &matcher] {
    delivery.wake();
    matcher.catchUp(std::chrono::seconds(2));
  });
  pipeline.setSubscriptions(topics, &registry);
  if (!pipeline.mergeStatus().ok()) {
    std::cerr << "fhir-gateway serve: " << pipeline.mergeStatus().message() << "\n";
    return 2;
  }
  pipeline.setSpecs((*runtime)->specs);
  std::vector<std::string> canonicals;
  for (const Topic& topic : topics->topics()) canonicals.push_back(topic.canonical);
  ServerContext context{config, store, validator, pipeline, metrics, canonicals, topics, &registry,
                        [&delivery] { delivery.wake(); }, ""};
  std::unique_ptr<auth::AuthService> auth_service;
  if (config.auth) {
    auto created = auth::AuthService::create(*config.auth, store, config.data_dir);
    if (!created.ok()) {
      io.err << "fhir-gateway serve: " << created.message() << "\n";
      return 2;
    }
    auth_service = std::move(*created);
    context.auth = auth_service.get();
  }
  // Who sees what, and the audit trail (append-only in the store).
  auth::AccessPolicy policy(auth_service ? &auth_service->config() : nullptr, store);
  context.policy = &policy;
  // Feeds and Subscriptions receive only what their client may see (access.md).
  pipeline.setAccess(&policy);
  matcher.setVisibility(ownerVisibility(&policy));
  auth::AuditLog audit(store);
  context.audit = &audit;
  // scripts/bench-audit-drain measures what auditing costs the delivery drain: with
  // GATEWAY_BENCH_NO_DELIVERY_AUDIT=1 and no `auth` block (never with auth on) delivery attempts
  // are not audited, with a warning.
  const char* no_delivery_audit = std::getenv("GATEWAY_BENCH_NO_DELIVERY_AUDIT");
  const bool audit_deliveries = config.auth || no_delivery_audit == nullptr || std::string(no_delivery_audit) != "1";
  if (!audit_deliveries) io.err << "fhir-gateway serve: warning: GATEWAY_BENCH_NO_DELIVERY_AUDIT: delivery attempts are not audited (benchmarks only)\n";
  if (audit_deliveries) delivery.setAudit([&audit](const std::string& destination, const std::string& endpoint_host, int status,
                             const std::string& error) {
    auth::AuditEntry entry;
    entry.type = "delivery";
    entry.subtype = "deliver";
    entry.action = 'C';
    entry.status = status;
    entry.why = error;
    entry.address = endpoint_host;
    entry.entities = {destination};
    audit.record(entry, std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count());
  });
  // Bulk export (gateway/export): durable jobs, resumed on start; files in export.dir. On
  // PostgreSQL the jobs are the store's, shared with the other instances (a dead one's are taken
  // over once their lease expired); on SQLite they are in export.dir/jobs.db.
  auto export_jobs = openExportJobs(config);
  if (!export_jobs.ok()) {
    io.err << "fhir-gateway serve: " << export_jobs.message() << "\n";
    return 2;
  }
  auto bulk = exports::ExportService::create(store, &policy, exports::ExportService::optionsOf(config), *export_jobs);
  if (!bulk.ok()) {
    io.err << "fhir-gateway serve: " << bulk.message() << "\n";
    return 2;
  }
  context.exports = bulk->get();
  matcher.start();  // before the first request can wait for it
  HttpServer server(context);
  Status started = server.start(host, port);
  if (!started.ok()) {
    io.err << "fhir-gateway serve: " << started.message() << "\n";
    return 2;
  }
  const std::string shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  // Every URL the gateway publishes starts with this one base (checked above, so it is there).
  auto published = publicBase(config, host, server.port());
  const std::string public_base = published.ok() ? *published : std::string();
  const std::string base_url = public_base + "/fhir";
  pipeline.setBaseUrl(base_url);
  context.base_url = base_url;
  if (auth_service) auth_service->setBaseUrl(public_base);
  delivery.setSubscriptions(&registry, base_url);
  delivery.start();
  // A Subscription created, changed or deleted on another gateway sharing the store reaches this
  // one within a second (an SQLite store has no other gateway).
  SubscriptionSync& subscription_sync = *(*runtime)->subscription_sync;
  if (config.store.kind == "postgresql") subscription_sync.start(std::chrono::seconds(1), [&delivery] { delivery.wake(); });
  (*bulk)->start();
  io.out << "listening on " << (config.tls ? "https://" : "http://") << shown_host << ":" << server.port() << std::endl;

  int received = 0;
  sigwait(&signals, &received);
  io.err << "fhir-gateway serve: " << (received == SIGTERM ? "SIGTERM" : "SIGINT")
         << " received, draining\n";
  server.stop();
  subscription_sync.stop();
  (*bulk)->stop();
  matcher.stop();
  delivery.stop();
  audit.stop();
  curl_global_cleanup();
  return 0;
}

}  // namespace fhir::gateway::cli
