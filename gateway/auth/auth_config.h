// SPDX-License-Identifier: Apache-2.0
#pragma once

// The `auth` block of the configuration (contracts/access.md "Clients"), turned into values
// once at start-up: clients with their kind, public keys (JWK sets, by kid) and the
// organizations they stand for.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"
#include "gateway/auth/jose.h"
#include "gateway/auth/scopes.h"

namespace fhir::gateway::auth {

struct AuthClient {
  std::string id;
  ClientKind kind = ClientKind::kAdmin;
  std::vector<PublicKey> keys;                      // from `jwksFile` or inline `jwks`
  std::vector<std::string> sources;                 // ehr: the event `source`s it may post
  std::string payer_id;                             // payer: its `payers[].id`
  std::vector<std::string> subscription_endpoints;  // hie: allowed channel endpoint prefixes
  bool all_practices = false;                       // hie: `"practices": "all"`
  std::vector<std::string> practices;               // hie: practice NPIs
  std::string practice_npi;                         // practice
  std::string certificate_subject;                  // bound TLS client certificate, when set

  const PublicKey* findKey(std::string_view kid) const;
};

struct AuthConfig {
  // PEM file of the gateway's ES384 token signing key. Empty: `<dataDir>/auth/gateway-es384.pem`.
  std::string signing_key_file;
  // `createSigningKey`: make the key (EC P-384) when the file does not exist; otherwise a missing
  // file is a start-up error.
  bool create_signing_key = false;
  int64_t token_lifetime_seconds = 300;
  int64_t max_subscriptions_per_client = 100;
  std::vector<AuthClient> clients;

  const AuthClient* findClient(std::string_view id) const;
};

// Parses the `auth` member. Unknown keys, keys that do not belong to a client's kind, missing
// required keys, unreadable or invalid JWK sets and a payer client whose `payerId` is not in
// `payer_ids` are errors naming the key (`auth.clients[1].jwksFile`).
Result<AuthConfig> parseAuthConfig(const json::Value& auth, const std::vector<std::string>& payer_ids);

}  // namespace fhir::gateway::auth
