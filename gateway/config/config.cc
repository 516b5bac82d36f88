// SPDX-License-Identifier: Apache-2.0
#include "gateway/config/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "conformance/json/json.h"
#include "gateway/store/pg_store.h"

namespace fhir::gateway {
namespace {

using json::Value;

// Walks one JSON object, checking keys against an allow-list and reading typed members.
class ObjectReader {
 public:
  ObjectReader(const Value& object, std::string path) : object_(object), path_(std::move(path)) {}

  Status checkKeys(std::initializer_list<std::string_view> allowed) const {
    if (!object_.IsObject()) return Error{where("") + " must be a JSON object"};
    for (const auto& member : object_.GetObject()) {
      std::string_view key = json::stringView(member.name);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        return Error{"unknown configuration key '" + where(key) + "'"};
      }
    }
    return Status::Ok();
  }

  Status string(std::string_view key, std::string& out, bool required) const {
    const Value* value = json::find(object_, key);
    if (value == nullptr) {
      if (required) return Error{"missing required configuration key '" + where(key) + "'"};
      return Status::Ok();
    }
    if (!json::isString(*value)) return Error{"configuration key '" + where(key) + "' must be a string"};
    out = std::string(json::stringView(*value));
    if (required && out.empty()) return Error{"configuration key '" + where(key) + "' must not be empty"};
    return Status::Ok();
  }

  Status integer(std::string_view key, int64_t& out, int64_t minimum) const {
    const Value* value = json::find(object_, key);
    if (value == nullptr) return Status::Ok();
    auto number = json::numberAsInt64(*value);
    if (!number) return Error{"configuration key '" + where(key) + "' must be an integer"};
    if (*number < minimum) {
      return Error{"configuration key '" + where(key) + "' must be at least " + std::to_string(minimum)};
    }
    out = *number;
    return Status::Ok();
  }

  Status number(std::string_view key, double& out) const {
    const Value* value = json::find(object_, key);
    if (value == nullptr) return Status::Ok();
    auto number = json::numberAsDouble(*value);
    if (!number || *number <= 0) return Error{"configuration key '" + where(key) + "' must be a positive number"};
    out = *number;
    return Status::Ok();
  }

  Status stringList(std::string_view key, std::vector<std::string>& out) const {
    const Value* value = json::find(object_, key);
    if (value == nullptr) return Status::Ok();
    if (!value->IsArray()) return Error{"configuration key '" + where(key) + "' must be an array of strings"};
    for (const Value& item : value->GetArray()) {
      if (!json::isString(item)) return Error{"configuration key '" + where(key) + "' must be an array of strings"};
      out.emplace_back(json::stringView(item));
    }
    return Status::Ok();
  }

  const Value* member(std::string_view key) const { return json::find(object_, key); }
  std::string where(std::string_view key) const {
    if (key.empty()) return path_.empty() ? "(top level)" : path_;
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

 private:
  const Value& object_;
  std::string path_;
};

#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    Status status_ = (expr);                        \
    if (!status_.ok()) return Error{status_.message()}; \
  } while (false)

Status checkEndpoint(const std::string& endpoint, const std::string& where) {
  if (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0) {
    return Error{"configuration key '" + where + "' must be an http:// or https:// URL"};
  }
  return Status::Ok();
}

Status readableFile(const std::string& path, const std::string& where) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"configuration key '" + where + "': cannot read file '" + path + "'"};
  return Status::Ok();
}

// The endpoint options shared by payers and feeds: authHeader, clientCert, clientKey, caFile,
// batchWindowMs.
Status parseEndpointOptions(const ObjectReader& reader, const std::string& endpoint, EndpointOptions& options) {
  if (const Value* header = reader.member("authHeader")) {
    ObjectReader header_reader(*header, reader.where("authHeader"));
    RETURN_IF_ERROR(header_reader.checkKeys({"name", "value"}));
    RETURN_IF_ERROR(header_reader.string("name", options.auth_header_name, true));
    RETURN_IF_ERROR(header_reader.string("value", options.auth_header_value, true));
    const std::string& name = options.auth_header_name;
    if (name.find_first_not_of("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") !=
        std::string::npos) {
      return Error{"configuration key '" + header_reader.where("name") + "' must be an HTTP header name"};
    }
    if (options.auth_header_value.find_first_of("\r\n") != std::string::npos) {
      return Error{"configuration key '" + header_reader.where("value") + "' must not contain a line break"};
    }
  }
  RETURN_IF_ERROR(reader.string("clientCert", options.client_cert, false));
  RETURN_IF_ERROR(reader.string("clientKey", options.client_key, false));
  RETURN_IF_ERROR(reader.string("caFile", options.ca_file, false));
  const bool https = endpoint.rfind("https://", 0) == 0;
  for (const auto& [key, path] : {std::pair<const char*, const std::string*>{"clientCert", &options.client_cert},
                                  {"clientKey", &options.client_key}, {"caFile", &options.ca_file}}) {
    if (path->empty()) continue;
    if (!https) return Error{"configuration key '" + reader.where(key) + "' needs an https:// endpoint"};
    RETURN_IF_ERROR(readableFile(*path, reader.where(key)));
  }
  if (!options.client_key.empty() && options.client_cert.empty()) {
    return Error{"configuration key '" + reader.where("clientKey") + "' needs 'clientCert' beside it"};
  }
  RETURN_IF_ERROR(reader.integer("batchWindowMs", options.batch_window_ms, 0));
  return Status::Ok();
}

// `limits`: every key optional, every value a positive integer.
Status parseLimits(const Value& value, LimitsConfig& limits) {
  ObjectReader reader(value, "limits");
  RETURN_IF_ERROR(reader.checkKeys({"maxJsonDepth", "headerTimeoutMs", "bodyIdleTimeoutMs", "maxHeaderBytes",
                                    "maxConnections", "maxConnectionsPerAddress", "maxRecordBytes",
                                    "maxQuarantinePayloadBytes"}));
  RETURN_IF_ERROR(reader.integer("maxJsonDepth", limits.max_json_depth, 1));
  RETURN_IF_ERROR(reader.integer("headerTimeoutMs", limits.header_timeout_ms, 1));
  RETURN_IF_ERROR(reader.integer("bodyIdleTimeoutMs", limits.body_idle_timeout_ms, 1));
  RETURN_IF_ERROR(reader.integer("maxHeaderBytes", limits.max_header_bytes, 256));
  RETURN_IF_ERROR(reader.integer("maxConnections", limits.max_connections, 1));
  RETURN_IF_ERROR(reader.integer("maxConnectionsPerAddress", limits.max_connections_per_address, 1));
  RETURN_IF_ERROR(reader.integer("maxRecordBytes", limits.max_record_bytes, 64));
  RETURN_IF_ERROR(reader.integer("maxQuarantinePayloadBytes", limits.max_quarantine_payload_bytes, 64));
  return Status::Ok();
}

Result<PayerConfig> parsePayer(const Value& value, const std::string& path) {
  ObjectReader reader(value, path);
  RETURN_IF_ERROR(reader.checkKeys(
      {"id", "name", "format", "identifier", "endpoint", "secret", "routes", "authHeader", "clientCert", "clientKey",
       "caFile", "batchWindowMs", "rosterMode"}));
  PayerConfig payer;
  RETURN_IF_ERROR(reader.string("id", payer.id, true));
  RETURN_IF_ERROR(reader.string("name", payer.name, true));
  RETURN_IF_ERROR(reader.string("format", payer.format, true));
  RETURN_IF_ERROR(reader.string("endpoint", payer.endpoint, true));
  RETURN_IF_ERROR(checkEndpoint(payer.endpoint, reader.where("endpoint")));
  RETURN_IF_ERROR(reader.string("secret", payer.secret, false));
  RETURN_IF_ERROR(reader.string("rosterMode", payer.roster_mode, false));
  if (payer.roster_mode != "delta" && payer.roster_mode != "full") {
    return Error{reader.where("rosterMode") + ": must be \"delta\" or \"full\", not \"" + payer.roster_mode + "\""};
  }
  if (const Value* identifier = reader.member("identifier")) {
    ObjectReader id_reader(*identifier, reader.where("identifier"));
    RETURN_IF_ERROR(id_reader.checkKeys({"system", "value"}));
    RETURN_IF_ERROR(id_reader.string("system", payer.identifier_system, true));
    RETURN_IF_ERROR(id_reader.string("value", payer.identifier_value, true));
  }
  if (const Value* routes = reader.member("routes")) {
    ObjectReader routes_reader(*routes, reader.where("routes"));
    RETURN_IF_ERROR(routes_reader.checkKeys({"codes", "linesOfBusiness"}));
    RETURN_IF_ERROR(routes_reader.stringList("codes", payer.routes.codes));
    RETURN_IF_ERROR(routes_reader.stringList("linesOfBusiness", payer.routes.lines_of_business));
  }
  RETURN_IF_ERROR(parseEndpointOptions(reader, payer.endpoint, payer.options));
  return payer;
}

// 0.0.0.0, ::, and their other spellings: an address to listen on, never one to publish.
bool isWildcardAddress(std::string host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return v4.s_addr == htonl(INADDR_ANY);
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&v6);
}

// `tls`: certFile and keyFile required, clientCaFile optional; every file must be readable.
Result<TlsConfig> parseTls(const Value& value) {
  ObjectReader reader(value, "tls");
  RETURN_IF_ERROR(reader.checkKeys({"certFile", "keyFile", "clientCaFile"}));
  TlsConfig tls;
  RETURN_IF_ERROR(reader.string("certFile", tls.cert_file, true));
  RETURN_IF_ERROR(reader.string("keyFile", tls.key_file, true));
  RETURN_IF_ERROR(reader.string("clientCaFile", tls.client_ca_file, false));
  for (const auto& [key, path] : {std::pair<const char*, const std::string*>{"certFile", &tls.cert_file},
                                  {"keyFile", &tls.key_file}, {"clientCaFile", &tls.client_ca_file}}) {
    if (!path->empty()) RETURN_IF_ERROR(readableFile(*path, reader.where(key)));
  }
  return tls;
}

}  // namespace

// `publicBaseUrl`: an http(s) URL without query or fragment whose host is a real address;
// kept without its trailing '/'.
Status checkPublicBaseUrl(std::string& url) {
  const std::string where = "configuration key 'publicBaseUrl'";
  const size_t scheme_end = url.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return Error{where + " must be an http:// or https:// URL"};
  if (url.find_first_of("?# \t\r\n") != std::string::npos) {
    return Error{where + " must be a base URL without query, fragment or spaces"};
  }
  const size_t authority = scheme_end + 3;
  const size_t path = url.find('/', authority);
  std::string host = url.substr(authority, path == std::string::npos ? std::string::npos : path - authority);
  if (host.find('@') != std::string::npos) return Error{where + " must not carry user information"};
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  if (isWildcardAddress(host)) {
    return Error{where + " names '" + (host.empty() ? "no host" : host) +
                 "': publish the address clients reach the gateway at, not a wildcard"};
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  return Status::Ok();
}

bool splitListen(const std::string& listen, std::string& host, uint16_t& port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string digits = listen.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos) return false;
  const int value = std::stoi(digits);
  if (value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

Result<std::string> publicBase(const Config& config, const std::string& host, uint16_t port) {
  if (!config.public_base_url.empty()) return config.public_base_url;
  if (isWildcardAddress(host)) {
    return Error{"listening on '" + host + "' (every address) needs 'publicBaseUrl': the base URL clients reach the "
                 "gateway at, used in fullUrl, Location and the token audience"};
  }
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return std::string(config.tls ? "https://" : "http://") + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool PayerConfig::routesCode(std::string_view code) const {
  return routes.codes.empty() ||
         std::find(routes.codes.begin(), routes.codes.end(), code) != routes.codes.end();
}

bool PayerConfig::routesLineOfBusiness(std::string_view line_of_business) const {
  return routes.lines_of_business.empty() ||
         std::find(routes.lines_of_business.begin(), routes.lines_of_business.end(),
                   line_of_business) != routes.lines_of_business.end();
}

const PayerConfig* Config::findPayer(std::string_view id) const {
  for (const PayerConfig& payer : payers) {
    if (payer.id == id) return &payer;
  }
  return nullptr;
}

// `store`: {"kind": "sqlite"} or {"kind": "postgresql", "url", "passwordFile", "sslmode", "schema"}.
static Status parseStore(const Value& value, StoreConfig& store) {
  ObjectReader reader(value, "store");
  RETURN_IF_ERROR(reader.checkKeys({"kind", "url", "passwordFile", "sslmode", "schema"}));
  RETURN_IF_ERROR(reader.string("kind", store.kind, true));
  if (store.kind == "sqlite") {
    for (const char* key : {"url", "passwordFile", "sslmode", "schema"}) {
      if (reader.member(key) != nullptr) {
        return Error{"configuration key '" + reader.where(key) + "' is for \"kind\": \"postgresql\" only"};
      }
    }
    return Status::Ok();
  }
  if (store.kind != "postgresql") {
    return Error{"configuration key 'store.kind' must be \"sqlite\" or \"postgresql\", not \"" + store.kind + "\""};
  }
  RETURN_IF_ERROR(reader.string("url", store.url, true));
  if (store.url.rfind("postgresql://", 0) != 0 && store.url.rfind("postgres://", 0) != 0) {
    return Error{"configuration key 'store.url' must be a postgresql:// URL"};
  }
  if (postgresUrlHasPassword(store.url)) {
    return Error{"configuration key 'store.url' must not carry a password: give it in 'store.passwordFile'"};
  }
  RETURN_IF_ERROR(reader.string("passwordFile", store.password_file, false));
  if (!store.password_file.empty()) RETURN_IF_ERROR(readableFile(store.password_file, "store.passwordFile"));
  RETURN_IF_ERROR(reader.string("sslmode", store.sslmode, false));
  if (!store.sslmode.empty() && store.sslmode != "disable" && store.sslmode != "allow" && store.sslmode != "prefer" &&
      store.sslmode != "require" && store.sslmode != "verify-ca" && store.sslmode != "verify-full") {
    return Error{"configuration key 'store.sslmode' must be one of disable, allow, prefer, require, verify-ca, "
                 "verify-full"};
  }
  RETURN_IF_ERROR(reader.string("schema", store.schema, false));
  if (store.schema.empty() || store.schema.size() > 63) {
    return Error{"configuration key 'store.schema' must be a name of 1 to 63 characters"};
  }
  return Status::Ok();
}

// `igs`: an array of package paths, or an object with `packages` and the validation policies.
static Status parseIgs(const Value& igs, IgConfig& out) {
  if (igs.IsArray()) {
    for (const Value& item : igs.GetArray()) {
      if (!json::isString(item) || json::stringView(item).empty()) {
        return Error{"configuration key 'igs' must be an array of package paths (folders or .tgz files)"};
      }
      out.packages.emplace_back(json::stringView(item));
    }
    return Status::Ok();
  }
  ObjectReader reader(igs, "igs");
  RETURN_IF_ERROR(reader.checkKeys({"packages", "strictDependencies", "uncheckedBindings"}));
  RETURN_IF_ERROR(reader.stringList("packages", out.packages));
  if (const Value* strict = reader.member("strictDependencies")) {
    if (!strict->IsBool()) return Error{"configuration key 'igs.strictDependencies' must be true or false"};
    out.strict_dependencies = strict->GetBool();
  }
  std::string unchecked = "warning";
  RETURN_IF_ERROR(reader.string("uncheckedBindings", unchecked, false));
  if (unchecked != "warning" && unchecked != "error") {
    return Error{"configuration key 'igs.uncheckedBindings' must be \"warning\" or \"error\""};
  }
  out.unchecked_bindings_are_errors = unchecked == "error";
  return Status::Ok();
}

Result<Config> parseConfig(std::string_view text) {
  json::Document doc;
  json::ParseError parse_error;
  if (!json::parse(text, doc, parse_error)) return Error{"configuration is not valid JSON: " + parse_error.describe()};
  ObjectReader reader(doc, "");
  RETURN_IF_ERROR(reader.checkKeys({"listen", "dataDir", "maxBodyBytes", "payers", "feeds", "delivery", "limits", "igs",
                                     "publicBaseUrl", "tls", "allowPlainHttp", "auth", "store", "export", "scorecard"}));
  Config config;
  RETURN_IF_ERROR(reader.string("listen", config.listen, false));
  RETURN_IF_ERROR(reader.string("dataDir", config.data_dir, false));
  RETURN_IF_ERROR(reader.integer("maxBodyBytes", config.max_body_bytes, 1));
  std::set<std::string> ids;
  if (const Value* payers = reader.member("payers")) {
    if (!payers->IsArray()) return Error{"configuration key 'payers' must be an array"};
    for (rapidjson::SizeType index = 0; index < payers->Size(); ++index) {
      auto payer = parsePayer((*payers)[index], "payers[" + std::to_string(index) + "]");
      if (!payer.ok()) return payer.error();
      if (!ids.insert("payer:" + payer->id).second) {
        return Error{"duplicate payer id '" + payer->id + "' in configuration key 'payers'"};
      }
      config.payers.push_back(std::move(*payer));
    }
  }
  if (const Value* feeds = reader.member("feeds")) {
    if (!feeds->IsArray()) return Error{"configuration key 'feeds' must be an array"};
    for (rapidjson::SizeType index = 0; index < feeds->Size(); ++index) {
      ObjectReader feed_reader((*feeds)[index], "feeds[" + std::to_string(index) + "]");
      RETURN_IF_ERROR(feed_reader.checkKeys(
          {"id", "endpoint", "secret", "authHeader", "clientCert", "clientKey", "caFile", "batchWindowMs", "client"}));
      FeedConfig feed;
      RETURN_IF_ERROR(feed_reader.string("id", feed.id, true));
      RETURN_IF_ERROR(feed_reader.string("client", feed.client, false));
      RETURN_IF_ERROR(feed_reader.string("endpoint", feed.endpoint, true));
      RETURN_IF_ERROR(checkEndpoint(feed.endpoint, feed_reader.where("endpoint")));
      RETURN_IF_ERROR(feed_reader.string("secret", feed.secret, false));
      RETURN_IF_ERROR(parseEndpointOptions(feed_reader, feed.endpoint, feed.options));
      if (!ids.insert("feed:" + feed.id).second) {
        return Error{"duplicate feed id '" + feed.id + "' in configuration key 'feeds'"};
      }
      config.feeds.push_back(std::move(feed));
    }
  }
  if (const Value* delivery = reader.member("delivery")) {
    ObjectReader delivery_reader(*delivery, "delivery");
    RETURN_IF_ERROR(delivery_reader.checkKeys(
        {"timeoutMs", "initialBackoffMs", "maxBackoffMs", "giveUpAfterHours", "circuitBreakerFailures",
         "circuitBreakerCoolDownMs"}));
    RETURN_IF_ERROR(delivery_reader.integer("timeoutMs", config.delivery.timeout_ms, 1));
    RETURN_IF_ERROR(delivery_reader.integer("initialBackoffMs", config.delivery.initial_backoff_ms, 1));
    RETURN_IF_ERROR(delivery_reader.integer("maxBackoffMs", config.delivery.max_backoff_ms, 1));
    RETURN_IF_ERROR(delivery_reader.number("giveUpAfterHours", config.delivery.give_up_after_hours));
    RETURN_IF_ERROR(delivery_reader.integer("circuitBreakerFailures", config.delivery.circuit_breaker_failures, 0));
    config.delivery.circuit_breaker_cool_down_ms =
        std::min(config.delivery.circuit_breaker_cool_down_ms, config.delivery.max_backoff_ms);
    RETURN_IF_ERROR(delivery_reader.integer("circuitBreakerCoolDownMs", config.delivery.circuit_breaker_cool_down_ms, 1));
  }
  if (const Value* limits = reader.member("limits")) RETURN_IF_ERROR(parseLimits(*limits, config.limits));
  if (const Value* igs = reader.member("igs")) RETURN_IF_ERROR(parseIgs(*igs, config.igs));
  if (const Value* store = reader.member("store")) RETURN_IF_ERROR(parseStore(*store, config.store));
  if (const Value* exports = reader.member("export")) {
    ObjectReader export_reader(*exports, "export");
    RETURN_IF_ERROR(export_reader.checkKeys(
        {"retentionHours", "maxResourcesPerFile", "maxConcurrentJobs", "maxResourcesPerSecond", "dir", "leaseSeconds"}));
    RETURN_IF_ERROR(export_reader.number("retentionHours", config.export_.retention_hours));
    RETURN_IF_ERROR(export_reader.integer("maxResourcesPerFile", config.export_.max_resources_per_file, 1));
    RETURN_IF_ERROR(export_reader.integer("maxConcurrentJobs", config.export_.max_concurrent_jobs, 1));
    RETURN_IF_ERROR(export_reader.integer("maxResourcesPerSecond", config.export_.max_resources_per_second, 0));
    RETURN_IF_ERROR(export_reader.string("dir", config.export_.dir, false));
    RETURN_IF_ERROR(export_reader.number("leaseSeconds", config.export_.lease_seconds));
  }
  if (const Value* scorecard = reader.member("scorecard")) {
    ObjectReader scorecard_reader(*scorecard, "scorecard");
    RETURN_IF_ERROR(scorecard_reader.checkKeys({"quickMs", "staleWaitMs"}));
    RETURN_IF_ERROR(scorecard_reader.integer("quickMs", config.scorecard.quick_ms, 0));
    RETURN_IF_ERROR(scorecard_reader.integer("staleWaitMs", config.scorecard.stale_wait_ms, 0));
  }
  RETURN_IF_ERROR(reader.string("publicBaseUrl", config.public_base_url, false));
  if (!config.public_base_url.empty()) RETURN_IF_ERROR(checkPublicBaseUrl(config.public_base_url));
  if (const Value* tls = reader.member("tls")) {
    auto parsed = parseTls(*tls);
    if (!parsed.ok()) return parsed.error();
    config.tls = std::move(*parsed);
  }
  if (const Value* allow = reader.member("allowPlainHttp")) {
    if (!allow->IsBool()) return Error{"configuration key 'allowPlainHttp' must be true or false"};
    config.allow_plain_http = allow->GetBool();
  }
  if (const Value* auth = reader.member("auth")) {  // parsed by gateway/auth
    std::vector<std::string> payer_ids;
    for (const PayerConfig& payer : config.payers) payer_ids.push_back(payer.id);
    auto parsed = auth::parseAuthConfig(*auth, payer_ids);
    if (!parsed.ok()) return parsed.error();
    config.auth = std::move(*parsed);
    // A certificate binding that would never be checked is a mistake, not a default.
    const bool client_certificates = config.tls && !config.tls->client_ca_file.empty();
    for (size_t index = 0; index < config.auth->clients.size(); ++index) {
      if (!config.auth->clients[index].certificate_subject.empty() && !client_certificates) {
        return Error{"configuration key 'auth.clients[" + std::to_string(index) +
                     "].certificateSubject' needs 'tls.clientCaFile': client certificates are only asked for then"};
      }
    }
  }
  // Static feeds (access.md): bound to an `hie` client, they receive what it may see. With auth a
  // feed without a client is a start-up error (nothing leaves the gateway past the policy);
  // without auth a client could never be checked.
  for (size_t index = 0; index < config.feeds.size(); ++index) {
    const FeedConfig& feed = config.feeds[index];
    const std::string where = "configuration key 'feeds[" + std::to_string(index) + "].client'";
    if (!config.auth) {
      if (!feed.client.empty()) return Error{where + " needs an 'auth' block: clients are defined there"};
      continue;
    }
    if (feed.client.empty()) {
      return Error{where + " is required with 'auth': a feed receives what its hie client may see"};
    }
    const auth::AuthClient* client = config.auth->findClient(feed.client);
    if (client == nullptr) return Error{where + ": no client '" + feed.client + "' in 'auth.clients'"};
    if (client->kind != auth::ClientKind::kHie) {
      return Error{where + ": client '" + feed.client + "' is not of kind 'hie'"};
    }
  }
  return config;
}

Result<Config> loadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read configuration file " + path};
  std::ostringstream buffer;
  buffer << in.rdbuf();
  auto config = parseConfig(buffer.str());
  if (!config.ok()) return Error{path + ": " + config.message()};
  return config;
}

}  // namespace fhir::gateway
