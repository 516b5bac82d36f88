// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "conformance/json/json.h"

namespace fhir::gateway::auth {
namespace {

constexpr char kKeySeparator = '\x1f';

template <typename List, typename Value>
bool contains(const List& list, const Value& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool intersects(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  for (const std::string& item : a) {
    if (contains(b, item)) return true;
  }
  return false;
}

void addUnique(std::vector<std::string>& list, std::string value) {
  if (!value.empty() && !contains(list, value)) list.push_back(std::move(value));
}

std::vector<std::string_view> splitKey(std::string_view key) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = key.find(kKeySeparator, start);
    parts.push_back(key.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

// Every string under a member named "npi" or ending in "Npi" (requester.npi, panel.practiceNpi,
// requester.organizationNpi, episode.pcpNpi, ...): the practices an event names.
void collectNpis(const json::Value& value, std::vector<std::string>& out) {
  if (value.IsObject()) {
    for (const auto& member : value.GetObject()) {
      const std::string_view name(member.name.GetString(), member.name.GetStringLength());
      const bool npi = name == "npi" || (name.size() > 3 && name.substr(name.size() - 3) == "Npi");
      if (npi && json::isString(member.value)) addUnique(out, std::string(json::stringView(member.value)));
      else collectNpis(member.value, out);
    }
  } else if (value.IsArray()) {
    for (const json::Value& item : value.GetArray()) collectNpis(item, out);
  }
}

// "Patient/<id>" references in the members that name a resource's patient.
void collectPatients(const json::Value& resource, std::vector<std::string>& out) {
  for (const char* member : {"subject", "patient", "beneficiary", "for"}) {
    const json::Value* reference = json::find(resource, member);
    if (reference == nullptr || !reference->IsObject()) continue;
    auto text = json::getString(*reference, "reference");
    if (text && text->rfind("Patient/", 0) == 0) addUnique(out, std::string(text->substr(8)));
  }
}

// The values of a resource's identifiers with the NPI system.
void collectNpiIdentifiers(const json::Value& resource, std::vector<std::string>& out) {
  const json::Value* identifiers = json::find(resource, "identifier");
  if (identifiers == nullptr || !identifiers->IsArray()) return;
  for (const json::Value& identifier : identifiers->GetArray()) {
    if (json::getString(identifier, "system") != "http://hl7.org/fhir/sid/us-npi") continue;
    if (auto value = json::getString(identifier, "value")) addUnique(out, std::string(*value));
  }
}

// The identifiers of a contribution's JSON, as "system|value".
void identifierKeys(const std::string& json_text, std::set<std::string>& out) {
  auto doc = json::parse(json_text);
  if (!doc.ok() || !doc->IsObject()) return;
  const json::Value* identifiers = json::find(*doc, "identifier");
  if (identifiers == nullptr || !identifiers->IsArray()) return;
  for (const json::Value& identifier : identifiers->GetArray()) {
    out.insert(std::string(json::getString(identifier, "system").value_or("")) + "|" +
               std::string(json::getString(identifier, "value").value_or("")));
  }
}

// A contribution whose organization the client sees (its identifiers stay in what it reads).
bool contributionVisible(const AuthClient& client, const merge::Contribution& contribution) {
  switch (client.kind) {
    case ClientKind::kAdmin:
      return true;
    case ClientKind::kEhr:
      return contribution.kind == "ehr" && contains(client.sources, contribution.organization);
    case ClientKind::kPayer:
      return contribution.organization == client.payer_id || contribution.payer == client.payer_id;
    case ClientKind::kHie:
      return client.all_practices || contribution.kind == "ehr";
    case ClientKind::kPractice:
      return contribution.kind == "ehr";
  }
  return false;
}

Check forbidden(std::string why) { return Refusal{403, "forbidden", std::move(why)}; }

}  // namespace

bool payerOwnedType(std::string_view type) {
  return type == "Coverage" || type == "Claim" || type == "ClaimResponse" || type == "ExplanationOfBenefit" ||
         type == "Group" || type == "Provenance";
}

Owners ownersOf(const ResourceOrigins& origins, std::string_view type, std::string_view id, const std::string& json_text) {
  Owners owners;
  for (const ResourceOrigins::Event& event : origins.events) {
    const size_t colon = event.channel.find(':');
    if (colon != std::string::npos) {
      // claims:<payer>, roster:<payer>
      addUnique(owners.payers, event.channel.substr(colon + 1));
      continue;
    }
    if (event.channel == "econsult" || event.channel == "care-management") {
      // Keys: <source>␟<eventId> (e-consult JSON), hl7v2␟<source>␟<eventId>,
      // care-management␟<source>␟<eventId> (gateway/ingest/pipeline.cc).
      const auto parts = splitKey(event.idempotency_key);
      if (parts.size() >= 3 && (parts[0] == "hl7v2" || parts[0] == event.channel)) addUnique(owners.sources, std::string(parts[1]));
      else if (parts.size() == 2) addUnique(owners.sources, std::string(parts[0]));
    }
    if (!event.payload.empty()) {
      json::Document doc;
      json::ParseError error;
      if (json::parse(event.payload, doc, error)) collectNpis(doc, owners.practices);
    }
  }
  for (const merge::Contribution& contribution : origins.contributions) {
    if (contribution.kind == "ehr") addUnique(owners.sources, contribution.organization);
    else addUnique(owners.payers, contribution.organization);
    addUnique(owners.payers, contribution.payer);
    addUnique(owners.patients, contribution.patient_id);
  }
  for (const std::string& payer : origins.routed_payers) addUnique(owners.payers, payer);
  if (type == "Patient") addUnique(owners.patients, std::string(id));
  // The practice of an attribution Group is its NPI identifier (mappers/specs/roster.json): the
  // Group itself, and a Patient it lists as a member, belong to that practice.
  for (const std::string& group : origins.attributions) {
    json::Document doc;
    json::ParseError error;
    if (json::parse(group, doc, error) && doc.IsObject()) collectNpiIdentifiers(doc, owners.practices);
  }
  json::Document doc;
  json::ParseError error;
  if (json::parse(json_text, doc, error) && doc.IsObject()) {
    collectPatients(doc, owners.patients);
    if (type == "Group") collectNpiIdentifiers(doc, owners.practices);
  }
  return owners;
}

AccessPolicy::AccessPolicy(const AuthConfig* config, StorePtr store) : config_(config), store_(std::move(store)) {}

Check AccessPolicy::admin(const Caller& caller) const {
  if (caller.admin()) return std::nullopt;
  return forbidden("this route is for the admin client only");
}

Check AccessPolicy::fhir(const Caller& caller, Interaction interaction, std::string_view type) const {
  if (caller.open() || caller.scopes.allows(interaction, type)) return std::nullopt;
  static constexpr const char* kLetters[] = {"c", "r", "u", "d", "s"};
  return forbidden("the access token does not grant system/" + std::string(type) + "." +
                   kLetters[static_cast<int>(interaction)]);
}

Check AccessPolicy::ingestEvent(const Caller& caller, std::string_view channel, std::string_view source) const {
  if (caller.open()) return std::nullopt;
  if (!caller.scopes.allowsIngest(channel)) return forbidden("the access token does not grant ingest/" + std::string(channel));
  if (caller.client->kind == ClientKind::kEhr && !source.empty() && !contains(caller.client->sources, source)) {
    return forbidden("client '" + caller.client->id + "' may not post events of source '" + std::string(source) + "'");
  }
  return std::nullopt;
}

Check AccessPolicy::ingestPayerFile(const Caller& caller, std::string_view kind, std::string_view payer_id) const {
  if (caller.open()) return std::nullopt;
  if (!caller.scopes.allowsIngest(kind)) return forbidden("the access token does not grant ingest/" + std::string(kind));
  if (caller.client->kind == ClientKind::kPayer && caller.client->payer_id != payer_id) {
    return forbidden("client '" + caller.client->id + "' may post " + std::string(kind) + " files for payer '" +
                     caller.client->payer_id + "' only");
  }
  return std::nullopt;
}

Check AccessPolicy::subscriptionOwner(const Caller& caller, std::string_view subscription_id, std::string_view owner) const {
  if (caller.open() || caller.admin() || caller.client->id == owner) return std::nullopt;
  return Refusal{404, "not-found", "Subscription/" + std::string(subscription_id) + " is not known"};
}

Check AccessPolicy::subscriptionEndpoint(const Caller& caller, std::string_view endpoint, std::string_view self_host,
                                         int self_port) const {
  std::string scheme, host;
  int port = 0;
  if (!splitUrl(endpoint, scheme, host, port)) {
    return Refusal{422, "value", "Subscription.channel.endpoint must be an http or https URL"};
  }
  if (isLinkLocalHost(host)) {
    return Refusal{422, "value", "Subscription.channel.endpoint: link-local and metadata addresses are refused"};
  }
  if (port == self_port && (isLoopbackHost(host) || host == self_host || host == "0.0.0.0" || host == "::")) {
    return Refusal{422, "value", "Subscription.channel.endpoint must not be the gateway itself"};
  }
  if (caller.open()) return std::nullopt;
  if (scheme != "https" && !isLoopbackHost(host)) {
    return Refusal{422, "value", "Subscription.channel.endpoint must be https (auth is on)"};
  }
  if (caller.admin()) return std::nullopt;
  for (const std::string& prefix : caller.client->subscription_endpoints) {
    if (!prefix.empty() && endpoint.substr(0, prefix.size()) == prefix) return std::nullopt;
  }
  return Refusal{422, "value", "Subscription.channel.endpoint is not under one of client '" + caller.client->id +
                                   "' subscriptionEndpoints"};
}

bool AccessPolicy::practiceAllowed(const AuthClient& client, const std::vector<std::string>& npis) {
  if (client.kind == ClientKind::kPractice) return contains(npis, client.practice_npi);
  return client.all_practices || intersects(npis, client.practices);
}

Result<bool> AccessPolicy::practiceSeesPatient(const AuthClient& client, const std::string& patient_id) const {
  auto stored = store_->readResource("Patient", patient_id);
  if (!stored.ok()) return stored.error();
  auto origins = store_->originsOf("Patient", patient_id, true);
  if (!origins.ok()) return origins.error();
  const Owners owners = ownersOf(*origins, "Patient", patient_id, stored->has_value() ? (*stored)->json : std::string());
  return practiceAllowed(client, owners.practices);
}

Result<bool> AccessPolicy::sees(const AuthClient& client, std::string_view type, const Owners& owners) const {
  switch (client.kind) {
    case ClientKind::kAdmin:
      return true;
    case ClientKind::kEhr:
      return intersects(owners.sources, client.sources);
    case ClientKind::kPayer: {
      if (contains(owners.payers, client.payer_id)) return true;
      if (payerOwnedType(type)) return false;
      for (const std::string& patient : owners.patients) {
        auto coverage = store_->coverageOf(patient);
        if (!coverage.ok()) return coverage.error();
        for (const fhir::CoverageFact& fact : *coverage) {
          if (fact.payer_id == client.payer_id) return true;
        }
      }
      return false;
    }
    case ClientKind::kHie:
    case ClientKind::kPractice: {
      if (client.kind == ClientKind::kHie && client.all_practices) return true;
      if (practiceAllowed(client, owners.practices)) return true;
      if (payerOwnedType(type) && type != "Claim") return false;
      for (const std::string& patient : owners.patients) {
        auto seen = practiceSeesPatient(client, patient);
        if (!seen.ok() || *seen) return seen;
      }
      return false;
    }
  }
  return false;
}

namespace {
bool needsPayloads(const AuthClient& client) {
  return client.kind == ClientKind::kPractice || (client.kind == ClientKind::kHie && !client.all_practices);
}
}  // namespace

Result<std::optional<std::string>> AccessPolicy::visible(const Caller& caller, std::string_view type, std::string_view id,
                                                         const std::string& json_text) const {
  if (caller.open() || caller.client->kind == ClientKind::kAdmin) return std::optional<std::string>(json_text);
  if (type == "AuditEvent") return std::optional<std::string>();
  auto origins = store_->originsOf(type, id, needsPayloads(*caller.client));
  if (!origins.ok()) return origins.error();
  return visibleGiven(*caller.client, type, id, json_text, *origins);
}

Result<std::optional<std::string>> AccessPolicy::visibleWith(const Caller& caller, std::string_view type,
                                                             std::string_view id, const std::string& json_text,
                                                             const ResourceOrigins& pending) const {
  if (caller.open() || caller.client->kind == ClientKind::kAdmin) return std::optional<std::string>(json_text);
  if (type == "AuditEvent") return std::optional<std::string>();
  auto origins = store_->originsOf(type, id, needsPayloads(*caller.client));
  if (!origins.ok()) return origins.error();
  origins->events.insert(origins->events.end(), pending.events.begin(), pending.events.end());
  for (const merge::Contribution& contribution : pending.contributions) {
    if (contribution.type == type && contribution.id == id) origins->contributions.push_back(contribution);
  }
  return visibleGiven(*caller.client, type, id, json_text, *origins);
}

Result<std::optional<std::string>> AccessPolicy::visibleBundle(const Caller& caller, const std::string& bundle_json,
                                                               const ResourceOrigins& pending) const {
  if (caller.open() || caller.client->kind == ClientKind::kAdmin) return std::optional<std::string>(bundle_json);
  json::Document doc;
  json::ParseError error;
  if (!json::parse(bundle_json, doc, error) || !doc.IsObject()) return Error{"a feed Bundle is unreadable: " + error.describe()};
  json::Value* entries = json::find(doc, "entry");
  if (entries == nullptr || !entries->IsArray()) return std::optional<std::string>();
  bool changed = false;
  for (auto entry = entries->Begin(); entry != entries->End();) {
    json::Value* resource = json::find(*entry, "resource");
    const std::string type = resource != nullptr ? std::string(json::getString(*resource, "resourceType").value_or("")) : "";
    const std::string id = resource != nullptr ? std::string(json::getString(*resource, "id").value_or("")) : "";
    if (type.empty() || id.empty()) {  // nothing to own it: left out
      entry = entries->Erase(entry);
      changed = true;
      continue;
    }
    const std::string text = json::serialize(*resource);
    auto seen = visibleWith(caller, type, id, text, pending);
    if (!seen.ok()) return seen.error();
    if (!seen->has_value()) {
      entry = entries->Erase(entry);
      changed = true;
      continue;
    }
    if (**seen != text) {
      auto trimmed = json::parse(**seen);
      if (!trimmed.ok()) return Error{"a visible resource is unreadable"};
      resource->CopyFrom(*trimmed, doc.GetAllocator());
      changed = true;
    }
    ++entry;
  }
  if (entries->Empty()) return std::optional<std::string>();
  if (!changed) return std::optional<std::string>(bundle_json);
  return std::optional<std::string>(json::serialize(doc));
}

Result<std::optional<std::string>> AccessPolicy::visibleGiven(const AuthClient& client, std::string_view type,
                                                              std::string_view id, const std::string& json_text,
                                                              const ResourceOrigins& given) const {
  const ResourceOrigins* origins = &given;
  const Owners owners = ownersOf(*origins, type, id, json_text);
  auto seen = sees(client, type, owners);
  if (!seen.ok()) return seen.error();
  if (!*seen) return std::optional<std::string>();
  if (origins->contributions.empty()) return std::optional<std::string>(json_text);
  // Identifiers only organizations the client may not see gave are left out.
  std::set<std::string> allowed;
  for (const merge::Contribution& contribution : origins->contributions) {
    if (contributionVisible(client, contribution)) identifierKeys(contribution.json, allowed);
  }
  json::Document doc;
  json::ParseError error;
  if (!json::parse(json_text, doc, error) || !doc.IsObject()) return std::optional<std::string>(json_text);
  json::Value* identifiers = json::find(doc, "identifier");
  if (identifiers == nullptr || !identifiers->IsArray()) return std::optional<std::string>(json_text);
  bool removed = false;
  for (auto item = identifiers->Begin(); item != identifiers->End();) {
    const std::string key = std::string(json::getString(*item, "system").value_or("")) + "|" +
                            std::string(json::getString(*item, "value").value_or(""));
    if (allowed.count(key) == 0) {
      item = identifiers->Erase(item);
      removed = true;
    } else {
      ++item;
    }
  }
  if (!removed) return std::optional<std::string>(json_text);
  if (identifiers->Empty()) doc.RemoveMember("identifier");
  return std::optional<std::string>(json::serialize(doc));
}

bool isLinkLocalHost(std::string_view host) {
  const std::string text(host.substr(0, host.find('%')));  // an IPv6 zone id ("fe80::1%eth0")
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    const uint32_t address = ntohl(v4.s_addr);
    return (address >> 16) == ((169u << 8) | 254u);
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (v6.s6_addr[0] == 0xfe && (v6.s6_addr[1] & 0xc0) == 0x80) return true;
    // IPv4-mapped ::ffff:169.254.x.x
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::equal(kMapped, kMapped + 12, v6.s6_addr) && v6.s6_addr[12] == 169 && v6.s6_addr[13] == 254;
  }
  // Cloud metadata host names.
  return host == "metadata.google.internal" || host == "metadata";
}

bool isLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  const std::string text(host);
  in_addr v4{};
  return inet_pton(AF_INET, text.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

bool splitUrl(std::string_view url, std::string& scheme, std::string& host, int& port) {
  const size_t colon = url.find("://");
  if (colon == std::string_view::npos) return false;
  scheme = std::string(url.substr(0, colon));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (scheme != "http" && scheme != "https") return false;
  std::string_view rest = url.substr(colon + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);  // userinfo
  std::string_view port_text;
  if (!rest.empty() && rest[0] == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return false;
    host = std::string(rest.substr(1, close - 1));
    if (close + 1 < rest.size() && rest[close + 1] == ':') port_text = rest.substr(close + 2);
  } else {
    const size_t at = rest.rfind(':');
    host = std::string(rest.substr(0, at));
    if (at != std::string_view::npos) port_text = rest.substr(at + 1);
  }
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  if (host.empty()) return false;
  port = scheme == "https" ? 443 : 80;
  if (!port_text.empty()) {
    if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string_view::npos) return false;
    port = std::stoi(std::string(port_text));
  }
  return true;
}

}  // namespace fhir::gateway::auth
