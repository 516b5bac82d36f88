// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/auth_service.h"

#include <openssl/rand.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "gateway/auth/certificate.h"

namespace fhir::gateway::auth {
namespace {

constexpr int64_t kMaxAssertionLifetimeMs = 5 * 60 * 1000;
constexpr size_t kMaxCachedTokens = 100000;
constexpr std::string_view kTokenPath = "/auth/token";
constexpr std::string_view kSmartPath = "/.well-known/smart-configuration";
constexpr std::string_view kAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  json::appendEscaped(text, out);
  return out + "\"";
}

// An RFC 6749 §5.2 error answer; token answers are never cached (§5.1).
AuthAnswer oauthError(int status, std::string_view error, std::string_view description) {
  AuthAnswer answer;
  answer.status = status;
  answer.body = "{\"error\":" + jsonString(error) + ",\"error_description\":" + jsonString(description) + "}";
  answer.headers = {{"Cache-Control", "no-store"}, {"Pragma", "no-cache"}};
  return answer;
}

AuthAnswer invalidClient(std::string_view why) { return oauthError(401, "invalid_client", why); }

std::string randomId() {
  unsigned char bytes[18];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return {};
  return base64UrlEncode(std::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

std::optional<int64_t> integerClaim(const json::Value& payload, std::string_view name) {
  const json::Value* value = json::find(payload, name);
  if (value == nullptr) return std::nullopt;
  return json::numberAsInt64(*value);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> formDecode(std::string_view text) {
  std::string out;
  for (size_t index = 0; index < text.size(); ++index) {
    if (text[index] == '+') {
      out.push_back(' ');
    } else if (text[index] == '%') {
      if (index + 2 >= text.size()) return Error{"a bad %-escape"};
      const int high = hexValue(text[index + 1]);
      const int low = hexValue(text[index + 2]);
      if (high < 0 || low < 0) return Error{"a bad %-escape"};
      out.push_back(static_cast<char>(high * 16 + low));
      index += 2;
    } else {
      out.push_back(text[index]);
    }
  }
  return out;
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> parseForm(std::string_view body) {
  std::vector<std::pair<std::string, std::string>> fields;
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('&', start);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view pair = body.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    const size_t equals = pair.find('=');
    auto name = formDecode(pair.substr(0, equals));
    auto value = formDecode(equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1));
    if (!name.ok() || !value.ok()) return Error{"the form has a bad %-escape"};
    for (const auto& field : fields) {
      if (field.first == *name) return Error{"the parameter '" + *name + "' is repeated"};
    }
    fields.emplace_back(std::move(*name), std::move(*value));
  }
  return fields;
}

Result<std::unique_ptr<AuthService>> AuthService::create(AuthConfig config, StorePtr store, const std::string& data_dir) {
  std::string path = config.signing_key_file;
  if (path.empty()) path = (std::filesystem::path(data_dir) / "auth" / "gateway-es384.pem").string();
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    if (!config.create_signing_key) {
      return Error{"auth.signingKeyFile: '" + path + "' does not exist (set auth.createSigningKey to make one)"};
    }
    auto key = generateEs384Key();
    if (!key.ok()) return key.error();
    auto pem = writePrivateKeyPem(*key);
    if (!pem.ok()) return pem.error();
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
    // Private: written by the owner only, then moved into place so no instance reads half a key.
    const std::string scratch = path + ".tmp";
    {
      std::ofstream out(scratch, std::ios::binary | std::ios::trunc);
      std::filesystem::permissions(scratch, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                   std::filesystem::perm_options::replace, error);
      out << *pem;
      if (!out.flush()) return Error{"auth.signingKeyFile: cannot write '" + scratch + "'"};
    }
    std::filesystem::rename(scratch, path, error);
    if (error) return Error{"auth.signingKeyFile: cannot create '" + path + "': " + error.message()};
  }
  auto key = readPrivateKeyFile(path);
  if (!key.ok()) return Error{"auth.signingKeyFile: " + key.message()};
  if (key->algorithm != Algorithm::kES384) return Error{"auth.signingKeyFile: '" + path + "' must be an EC P-384 key (ES384)"};
  return std::unique_ptr<AuthService>(new AuthService(std::move(config), std::move(store), std::move(*key)));
}

AuthService::AuthService(AuthConfig config, StorePtr store, PrivateKey signing_key)
    : config_(std::move(config)), store_(std::move(store)), signing_key_(std::move(signing_key)) {
  verifying_key_.algorithm = Algorithm::kES384;
  verifying_key_.key = signing_key_.key;
  verifying_key_.kid = jwkThumbprint(signing_key_.key, Algorithm::kES384);
}

void AuthService::setBaseUrl(const std::string& base_url) {
  base_url_ = base_url;
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  token_url_ = base_url_ + std::string(kTokenPath);
}

bool AuthService::handles(std::string_view path) { return path == kTokenPath || path == kSmartPath; }

AuthAnswer AuthService::handle(std::string_view method, std::string_view path, std::string_view content_type,
                               std::string_view body, int64_t now_ms, std::string_view peer_subject,
                               std::string* client_id) {
  if (path == kSmartPath) {
    if (method != "GET") return oauthError(405, "invalid_request", "use GET");
    return AuthAnswer{200, "application/json", smartConfiguration(), {}};
  }
  if (method != "POST") return oauthError(405, "invalid_request", "the token endpoint takes POST");
  return tokenRequest(content_type, body, now_ms, peer_subject, client_id);
}

std::string AuthService::smartConfiguration() const {
  std::string scopes;
  for (const std::string& scope : supportedScopes()) scopes += (scopes.empty() ? "" : ",") + jsonString(scope);
  return "{\"issuer\":" + jsonString(base_url_) + ",\"token_endpoint\":" + jsonString(token_url_) +
         ",\"grant_types_supported\":[\"client_credentials\"]"
         ",\"token_endpoint_auth_methods_supported\":[\"private_key_jwt\"]"
         ",\"token_endpoint_auth_signing_alg_values_supported\":[\"RS384\",\"ES384\"]"
         ",\"scopes_supported\":[" + scopes + "]"
         ",\"capabilities\":[\"client-confidential-asymmetric\",\"permission-v2\"]}";
}

AuthAnswer AuthService::tokenRequest(std::string_view content_type, std::string_view body, int64_t now_ms,
                                     std::string_view peer_subject, std::string* client_id) {
  const std::string_view media = content_type.substr(0, content_type.find(';'));
  if (media != "application/x-www-form-urlencoded") {
    return oauthError(400, "invalid_request", "the body must be application/x-www-form-urlencoded");
  }
  auto form = parseForm(body);
  if (!form.ok()) return oauthError(400, "invalid_request", form.message());
  auto field = [&](std::string_view name) -> const std::string* {
    for (const auto& [key, value] : *form) {
      if (key == name) return &value;
    }
    return nullptr;
  };
  const std::string* grant_type = field("grant_type");
  if (grant_type == nullptr) return oauthError(400, "invalid_request", "grant_type is missing");
  if (*grant_type != "client_credentials") {
    return oauthError(400, "unsupported_grant_type", "only grant_type=client_credentials is supported");
  }
  const std::string* assertion_type = field("client_assertion_type");
  const std::string* assertion = field("client_assertion");
  if (assertion_type == nullptr || *assertion_type != kAssertionType) {
    return oauthError(400, "invalid_request", "client_assertion_type must be " + std::string(kAssertionType));
  }
  if (assertion == nullptr || assertion->empty()) return oauthError(400, "invalid_request", "client_assertion is missing");

  auto jws = parseJws(*assertion);
  if (!jws.ok()) return invalidClient("the client assertion is malformed: " + jws.message());
  if (jws->alg != "RS384" && jws->alg != "ES384") {
    return invalidClient("the client assertion must be signed RS384 or ES384 (alg '" + jws->alg + "' is refused)");
  }
  const json::Value& claims = jws->payload;
  auto iss = json::getString(claims, "iss");
  auto sub = json::getString(claims, "sub");
  if (!iss || !sub || *iss != *sub) return invalidClient("the client assertion's iss and sub must both be the client id");
  if (const std::string* named = field("client_id"); named != nullptr && *named != *iss) {
    return invalidClient("client_id differs from the assertion's iss");
  }
  const AuthClient* client = config_.findClient(*iss);
  if (client == nullptr) return invalidClient("unknown client");
  const PublicKey* key = client->findKey(jws->kid);
  if (key == nullptr) return invalidClient("the assertion's kid is not a key of this client");
  if (algorithmName(key->algorithm) != jws->alg) return invalidClient("the assertion's alg does not fit the key named by kid");
  if (!verifySignature(*key, jws->signing_input, jws->signature)) return invalidClient("the assertion's signature does not verify");
  if (!certificateMatches(*client, peer_subject)) {
    return invalidClient("the TLS client certificate is not the one registered for this client (certificateSubject)");
  }

  bool audience = false;
  if (const json::Value* aud = json::find(claims, "aud")) {
    if (json::isString(*aud)) audience = json::stringView(*aud) == token_url_;
    if (aud->IsArray()) {
      for (const json::Value& item : aud->GetArray()) audience = audience || (json::isString(item) && json::stringView(item) == token_url_);
    }
  }
  if (!audience) return invalidClient("the assertion's aud must be the token endpoint " + token_url_);
  auto exp = integerClaim(claims, "exp");
  if (!exp) return invalidClient("the assertion has no integer exp");
  const int64_t exp_ms = *exp * 1000;
  if (exp_ms <= now_ms) return invalidClient("the assertion has expired");
  if (exp_ms - now_ms > kMaxAssertionLifetimeMs) return invalidClient("the assertion's exp is more than 5 minutes ahead");
  auto jti = json::getString(claims, "jti");
  if (!jti || jti->empty()) return invalidClient("the assertion has no jti");

  const ScopeSet allowed = ScopeSet::allowedFor(client->kind);
  ScopeSet granted = allowed;
  if (const std::string* scope = field("scope"); scope != nullptr) {
    granted = ScopeSet::parse(*scope).intersect(allowed);
    if (granted.empty()) {
      return oauthError(400, "invalid_scope", "none of the requested scopes is registered or allowed for this client");
    }
  }

  auto claimed = store_->claimAssertionJti(client->id, *jti, exp_ms, now_ms);
  if (!claimed.ok()) return oauthError(503, "temporarily_unavailable", "the store is unavailable");
  if (!*claimed) return invalidClient("the assertion's jti was already used");

  auto token = issueAccessToken(*client, granted, now_ms);
  if (!token.ok()) return oauthError(500, "server_error", token.message());
  if (client_id != nullptr) *client_id = client->id;
  AuthAnswer answer;
  answer.body = "{\"access_token\":" + jsonString(*token) + ",\"token_type\":\"bearer\",\"expires_in\":" +
                std::to_string(config_.token_lifetime_seconds) + ",\"scope\":" + jsonString(granted.toString()) + "}";
  answer.headers = {{"Cache-Control", "no-store"}, {"Pragma", "no-cache"}};
  return answer;
}

Result<std::string> AuthService::issueAccessToken(const AuthClient& client, const ScopeSet& scope, int64_t now_ms) {
  const int64_t now = now_ms / 1000;
  const std::string payload = "{\"iss\":" + jsonString(base_url_) + ",\"sub\":" + jsonString(client.id) + ",\"aud\":" +
                              jsonString(base_url_) + ",\"iat\":" + std::to_string(now) + ",\"exp\":" +
                              std::to_string(now + config_.token_lifetime_seconds) + ",\"jti\":" + jsonString(randomId()) +
                              ",\"scope\":" + jsonString(scope.toString()) + ",\"client_kind\":" +
                              jsonString(clientKindName(client.kind)) + "}";
  return signJws(signing_key_, verifying_key_.kid, payload);
}

Result<AccessGrant> AuthService::verifyAccessToken(std::string_view token, int64_t now_ms) {
  const std::string key(token);
  {
    std::lock_guard lock(cache_mutex_);
    auto found = cache_.find(key);
    if (found != cache_.end()) {
      if (found->second.expires_ms > now_ms) return AccessGrant{found->second.client, found->second.scopes, found->second.expires_ms};
      cache_.erase(found);
      return Error{"the access token has expired"};
    }
  }
  auto jws = parseJws(token);
  if (!jws.ok()) return Error{"the access token is malformed"};
  if (jws->alg != "ES384" || jws->kid != verifying_key_.kid) return Error{"the access token was not issued by this gateway"};
  if (!verifySignature(verifying_key_, jws->signing_input, jws->signature)) return Error{"the access token's signature does not verify"};
  auto exp = integerClaim(jws->payload, "exp");
  if (!exp || *exp * 1000 <= now_ms) return Error{"the access token has expired"};
  auto sub = json::getString(jws->payload, "sub");
  const AuthClient* client = sub ? config_.findClient(*sub) : nullptr;
  if (client == nullptr) return Error{"the access token's client is not registered"};
  auto scope = json::getString(jws->payload, "scope");
  AccessGrant grant{client, ScopeSet::parse(scope ? *scope : std::string_view()), *exp * 1000};
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() >= kMaxCachedTokens) {
    std::erase_if(cache_, [&](const auto& entry) { return entry.second.expires_ms <= now_ms; });
    if (cache_.size() >= kMaxCachedTokens) cache_.clear();
  }
  cache_.emplace(key, CachedGrant{grant.client, grant.scopes, grant.expires_ms});
  return grant;
}

AuthAnswer AuthService::invalidTokenAnswer(const std::string& why) {
  AuthAnswer answer;
  answer.status = 401;
  answer.content_type = "application/fhir+json";
  answer.body = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"login\","
                "\"diagnostics\":" + jsonString(why) + "}]}";
  answer.headers = {{"WWW-Authenticate", "Bearer error=\"invalid_token\""}};
  return answer;
}

}  // namespace fhir::gateway::auth
