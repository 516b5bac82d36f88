// SPDX-License-Identifier: Apache-2.0
#pragma once

// SMART Backend Services for the gateway (contracts/access.md "Tokens"):
//  - POST /auth/token: client_credentials with a private_key_jwt client assertion (RS384 or
//    ES384, checked against the client's JWK set by kid; iss = sub = client id, aud = the token
//    endpoint URL, exp at most 5 minutes ahead, jti never seen within its lifetime, recorded in
//    the store so every instance refuses a replay), answered with an access token or an
//    RFC 6749 §5.2 error;
//  - GET /.well-known/smart-configuration;
//  - access tokens: JWTs signed ES384 with the gateway's key, verifiable by any instance that
//    has the key; verified tokens are cached by their text until they expire.
// Thread-safe: one AuthService serves every request thread.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/auth/auth_config.h"
#include "gateway/auth/jose.h"
#include "gateway/auth/scopes.h"
#include "gateway/store/store.h"

namespace fhir::gateway::auth {

// An HTTP answer of the auth routes, with its extra headers (Cache-Control, WWW-Authenticate).
struct AuthAnswer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// What a verified access token grants.
struct AccessGrant {
  const AuthClient* client = nullptr;  // points into the service's configuration
  ScopeSet scopes;
  int64_t expires_ms = 0;
};

class AuthService {
 public:
  // Loads (or, with createSigningKey, creates) the signing key. `data_dir` resolves the default
  // key path. Errors: unreadable or invalid key file, a missing one without createSigningKey.
  static Result<std::unique_ptr<AuthService>> create(AuthConfig config, StorePtr store, const std::string& data_dir);

  // The base URL the token endpoint is published under (publicBaseUrl, or http://HOST:PORT
  // once listening): the assertion `aud` must be `<base>/auth/token`. Call before serving.
  void setBaseUrl(const std::string& base_url);
  const std::string& tokenUrl() const { return token_url_; }

  // True for the two paths this service answers (the server asks before its own routes).
  static bool handles(std::string_view path);
  // `peer_subject`: the subject of the request's verified TLS client certificate (empty without
  // one); a client with a `certificateSubject` gets a token only over a matching certificate.
  // `client_id`, when given, receives the id of the client a token was issued to (for the audit).
  AuthAnswer handle(std::string_view method, std::string_view path, std::string_view content_type,
                    std::string_view body, int64_t now_ms, std::string_view peer_subject = {},
                    std::string* client_id = nullptr);

  AuthAnswer tokenRequest(std::string_view content_type, std::string_view body, int64_t now_ms,
                          std::string_view peer_subject = {}, std::string* client_id = nullptr);
  std::string smartConfiguration() const;

  // Verifies an access token (the text after "Bearer "). Errors say why (expired, bad
  // signature, unknown client); the server answers them with invalidTokenAnswer().
  Result<AccessGrant> verifyAccessToken(std::string_view token, int64_t now_ms);
  // 401, `WWW-Authenticate: Bearer error="invalid_token"`, an OperationOutcome (code `login`).
  static AuthAnswer invalidTokenAnswer(const std::string& why);

  // Issues an access token for a client directly (tests, benchmarks). `scope` as granted.
  Result<std::string> issueAccessToken(const AuthClient& client, const ScopeSet& scope, int64_t now_ms);
  const AuthConfig& config() const { return config_; }
  const PrivateKey& signingKey() const { return signing_key_; }

 private:
  AuthService(AuthConfig config, StorePtr store, PrivateKey signing_key);

  AuthConfig config_;
  StorePtr store_;
  PrivateKey signing_key_;
  PublicKey verifying_key_;
  std::string base_url_;
  std::string token_url_;

  struct CachedGrant {
    const AuthClient* client;
    ScopeSet scopes;
    int64_t expires_ms;
  };
  std::mutex cache_mutex_;
  std::unordered_map<std::string, CachedGrant> cache_;
};

// Decodes an application/x-www-form-urlencoded body. Errors: a bad %-escape, a repeated name.
Result<std::vector<std::pair<std::string, std::string>>> parseForm(std::string_view body);

}  // namespace fhir::gateway::auth
