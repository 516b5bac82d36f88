// SPDX-License-Identifier: Apache-2.0
#pragma once

// Scopes (contracts/access.md "Scopes"): SMART v2 system resource scopes (`system/Claim.rs`,
// `system/*.rs`, `system/Subscription.cruds`), their v1 forms (`system/*.read` = `.rs`,
// `.write` = `.cud`, `.*` = `.cruds`), and the gateway's `ingest/econsult`,
// `ingest/care-management`, `ingest/claims`, `ingest/roster` and `admin`.
// A ScopeSet is parsed once per token and then only queried; it is immutable and thread-safe.

#include <string>
#include <string_view>
#include <vector>

namespace fhir::gateway::auth {

enum class ClientKind { kEhr, kPayer, kHie, kPractice, kAdmin };
const char* clientKindName(ClientKind kind);

// One FHIR interaction as SMART v2 permissions name it: c r u d s.
enum class Interaction { kCreate, kRead, kUpdate, kDelete, kSearch };

class ScopeSet {
 public:
  ScopeSet() = default;
  // Parses a space-separated scope string. Scopes that are not registered (unknown names,
  // patient/ or user/ scopes, bad permission letters) are left out; `unknown` receives them.
  static ScopeSet parse(std::string_view text, std::vector<std::string>* unknown = nullptr);
  // Everything a client of this kind may be granted (the access.md table).
  static ScopeSet allowedFor(ClientKind kind);

  bool allows(Interaction interaction, std::string_view resource_type) const;
  bool allowsIngest(std::string_view channel) const;  // "econsult", "care-management", "claims", "roster"
  bool isAdmin() const { return admin_; }
  bool empty() const { return resources_.empty() && ingest_.empty() && !admin_; }

  // The scopes of this set that `allowed` also holds (per resource scope: the common resource
  // type and the common permissions).
  ScopeSet intersect(const ScopeSet& allowed) const;
  // Space-separated, in the v2 form, in a stable order.
  std::string toString() const;

 private:
  struct ResourceScope {
    std::string type;        // a resource type or "*"
    unsigned permissions{};  // bit per Interaction
  };
  std::vector<ResourceScope> resources_;
  std::vector<std::string> ingest_;  // channels
  bool admin_ = false;
};

// The names of every scope the gateway registers, for smart-configuration `scopes_supported`.
std::vector<std::string> supportedScopes();

}  // namespace fhir::gateway::auth
