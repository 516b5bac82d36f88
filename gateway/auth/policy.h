// SPDX-License-Identifier: Apache-2.0
#pragma once

// Who sees what (contracts/access.md "Scopes" table, docs/ACCESS.md "Who sees what"): the one
// policy every route asks.
//  - Route checks answer what a client *may do*: a refusal is 403 `forbidden` (or 404 where the
//    contract says a thing the client may not see does not exist: another client's Subscription).
//  - visible() answers what a client *may see* of one stored resource: nothing (the route
//    answers 404, a list leaves it out) or the resource with the identifiers of organizations the
//    client may not see left out. Reads call it today; search, history, export and the
//    scorecard call it on every resource they are about to return (the hook for those routes).
// Without an `auth` block there is no policy: every check allows (the gateway then listens on
// loopback only).
// Thread-safe: immutable after construction; the store is thread-safe.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/auth/auth_config.h"
#include "gateway/auth/scopes.h"
#include "gateway/store/store.h"

namespace fhir::gateway::auth {

// Who asks: the verified access token's client and scopes, and the peer address.
struct Caller {
  const AuthClient* client = nullptr;  // null: auth is off (an open gateway on loopback)
  ScopeSet scopes;
  std::string address;

  bool open() const { return client == nullptr; }
  bool admin() const { return client == nullptr || (client->kind == ClientKind::kAdmin && scopes.isAdmin()); }
  std::string id() const { return client != nullptr ? client->id : std::string(); }
};

// A refusal: the HTTP status, the OperationOutcome issue code and why (said to the client).
struct Refusal {
  int status = 403;
  std::string code = "forbidden";
  std::string why;
};
using Check = std::optional<Refusal>;  // nullopt: allowed

// The organizations a stored resource belongs to (access.md: the EHR sources that contributed
// to it, the payers whose coverage or routing it carries, the practices of the events that
// produced it) and the patients it is about.
struct Owners {
  std::vector<std::string> sources;
  std::vector<std::string> payers;
  std::vector<std::string> practices;  // NPIs named in the producing events
  std::vector<std::string> patients;   // Patient ids
};
Owners ownersOf(const ResourceOrigins& origins, std::string_view type, std::string_view id, const std::string& json);

// Resource types a payer sees only when they are its own (its Coverage, Claims routed to it,
// its attribution Groups, its Provenance), even for a patient it covers.
bool payerOwnedType(std::string_view type);

class AccessPolicy {
 public:
  // `config` null: auth is off. The configuration and store must outlive the policy.
  AccessPolicy(const AuthConfig* config, StorePtr store);
  bool enabled() const { return config_ != nullptr; }

  // /admin/*, /metrics, AuditEvent: the `admin` kind with the `admin` scope.
  Check admin(const Caller& caller) const;
  // A FHIR interaction on a type by scope (system/<type>.<letter>).
  Check fhir(const Caller& caller, Interaction interaction, std::string_view type) const;
  // POST /ingest/econsult | care-management: the ingest scope, and an EHR only for its own
  // `sources`. `source` empty: not known yet (the body is not read); the scope alone is checked.
  Check ingestEvent(const Caller& caller, std::string_view channel, std::string_view source) const;
  // POST /ingest/claims|roster/{payerId}: the ingest scope, and a payer only for its own id.
  Check ingestPayerFile(const Caller& caller, std::string_view kind, std::string_view payer_id) const;
  // A Subscription of `owner`: its owner and admin see it, everyone else gets 404.
  Check subscriptionOwner(const Caller& caller, std::string_view subscription_id, std::string_view owner) const;
  // A Subscription channel endpoint (422 `value` when refused): under the owner's
  // `subscriptionEndpoints` (admin: any), `https` when auth is on except on loopback, never a
  // link-local or metadata address, never `self_host:self_port` (the gateway itself).
  Check subscriptionEndpoint(const Caller& caller, std::string_view endpoint, std::string_view self_host,
                             int self_port) const;

  // The resource as `caller` may see it, nullopt when it may not see it at all. `json` is the
  // stored resource. Errors are store failures (answer 503, never "absent").
  Result<std::optional<std::string>> visible(const Caller& caller, std::string_view type, std::string_view id,
                                             const std::string& json) const;
  // visible() for a resource of a commit that is being made: the stored origins plus `pending`
  // (the event being committed and its contributions to this resource), the same rule. Static
  // feed rows are filtered with it before their event commits.
  Result<std::optional<std::string>> visibleWith(const Caller& caller, std::string_view type, std::string_view id,
                                                 const std::string& json, const ResourceOrigins& pending) const;
  // A Bundle (a feed row) as `caller` may see it: each entry as visibleWith() gives it, the ones
  // it may not see left out; nullopt when no entry is left. `pending`: the event being committed
  // (its contributions are matched to entries by type and id).
  Result<std::optional<std::string>> visibleBundle(const Caller& caller, const std::string& bundle_json,
                                                   const ResourceOrigins& pending) const;
  // The caller a Subscription owner or a feed's client acts as (null: none; auth off).
  static Caller callerOf(const AuthClient* client) {
    Caller caller;
    caller.client = client;
    return caller;
  }
  // The configured client `id`, or null.
  const AuthClient* client(std::string_view id) const { return config_ != nullptr ? config_->findClient(id) : nullptr; }

 private:
  Result<std::optional<std::string>> visibleGiven(const AuthClient& client, std::string_view type, std::string_view id,
                                                  const std::string& json, const ResourceOrigins& origins) const;
  Result<bool> sees(const AuthClient& client, std::string_view type, const Owners& owners) const;
  Result<bool> practiceSeesPatient(const AuthClient& client, const std::string& patient_id) const;
  static bool practiceAllowed(const AuthClient& client, const std::vector<std::string>& npis);

  const AuthConfig* config_;
  StorePtr store_;
};

// Endpoint helpers (also used by delivery): an IP literal in 169.254.0.0/16 or fe80::/10, and a
// loopback host name or literal.
bool isLinkLocalHost(std::string_view host);
bool isLoopbackHost(std::string_view host);
// scheme, host (without brackets) and port of an http(s) URL; false when it is not one.
bool splitUrl(std::string_view url, std::string& scheme, std::string& host, int& port);

}  // namespace fhir::gateway::auth
