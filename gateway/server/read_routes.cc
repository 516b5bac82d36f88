// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/read_routes.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "conformance/json/json.h"
#include "gateway/server/fhir_http.h"
#include "gateway/server/resource_subset.h"

namespace fhir::gateway {
namespace {

constexpr size_t kDefaultCount = 50;
constexpr size_t kMaxCount = 1000;
// Store pages read to fill one history page when the policy hides versions (bounds the work of
// one request; the `next` link goes on from where it stopped).
constexpr int kMaxRounds = 8;

Answer refusal(const auth::Refusal& refused) { return outcomeAnswer(refused.status, refused.code, refused.why); }

// meta.lastUpdated of a stored resource's JSON.
std::string lastUpdatedOf(const std::string& text) {
  auto doc = json::parse(text);
  if (!doc.ok()) return {};
  const json::Value* meta = json::find(*doc, "meta");
  if (meta == nullptr || !meta->IsObject()) return {};
  return std::string(json::getString(*meta, "lastUpdated").value_or(""));
}

std::string percentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string jsonString(std::string_view text) {
  json::Document doc;
  json::Value value = json::makeString(std::string(text), doc.GetAllocator());
  return json::serialize(value);
}

// The page key in a `next` link: event_seq:type:id:version (':' is in no type or id).
std::string pageKey(const ResourceVersion& last) {
  return std::to_string(last.event_seq) + ":" + last.type + ":" + last.id + ":" + std::to_string(last.version);
}

std::optional<ResourceVersion> parsePageKey(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t colon; (colon = text.find(':', start)) != std::string::npos; start = colon + 1) parts.push_back(text.substr(start, colon - start));
  parts.push_back(text.substr(start));
  if (parts.size() != 4) return std::nullopt;
  ResourceVersion key;
  int64_t seq = 0;
  auto [end, error] = std::from_chars(parts[0].data(), parts[0].data() + parts[0].size(), seq);
  if (error != std::errc() || end != parts[0].data() + parts[0].size() || seq < 0) return std::nullopt;
  auto version = fhirhttp::positiveInteger(parts[3]);
  if (!version || (!parts[1].empty() && !isResourceTypeName(parts[1])) || !isResourceIdText(parts[2])) return std::nullopt;
  key.event_seq = seq;
  key.type = parts[1];
  key.id = parts[2];
  key.version = *version;
  return key;
}

class ReadRoutes {
 public:
  ReadRoutes(ServerContext& context, const auth::AccessPolicy& policy) : context_(context), policy_(policy) {}

  Answer read(FhirCall& call) {
    Access& access = call.access;
    access.audit.subtype = "read";
    access.audit.entities.push_back(call.type + "/" + call.id);
    if (auto refused = policy_.fhir(access.caller, auth::Interaction::kRead, call.type)) return refusal(*refused);
    auto stored = context_.store->readResource(call.type, call.id);
    if (!stored.ok()) return transient(stored.message());
    if (!stored->has_value()) return notFound(call.type + "/" + call.id + " is not known");
    return answerVersion(call, (*stored)->json, (*stored)->version);
  }

  Answer vread(FhirCall& call) {
    Access& access = call.access;
    access.audit.subtype = "vread";
    access.audit.entities.push_back(call.type + "/" + call.id);
    if (auto refused = policy_.fhir(access.caller, auth::Interaction::kRead, call.type)) return refusal(*refused);
    auto version = fhirhttp::positiveInteger(call.version);
    if (!version) return notFound("'" + call.version + "' is not a version id of this gateway (1, 2, 3 ...)");
    auto stored = context_.store->readVersion(call.type, call.id, *version);
    if (!stored.ok()) return transient(stored.message());
    if (!stored->has_value()) return notFound(call.type + "/" + call.id + " has no version " + call.version);
    return answerVersion(call, (*stored)->json, *version);
  }

  Answer history(FhirCall& call) {
    Access& access = call.access;
    access.audit.subtype = "history";
    access.audit.entities.push_back(call.type.empty() ? "_history" : call.id.empty() ? call.type : call.type + "/" + call.id);
    if (!call.type.empty()) {
      const auto interaction = call.id.empty() ? auth::Interaction::kSearch : auth::Interaction::kRead;
      if (auto refused = policy_.fhir(access.caller, interaction, call.type)) return refusal(*refused);
    }
    HistoryQuery query;
    query.type = call.type;
    query.id = call.id;
    query.count = kDefaultCount;
    std::vector<std::pair<std::string, std::string>> echoed;  // what the self and next links repeat
    subset::Shape shape;
    for (const auto& [name, value] : call.parameters) {
      if (name == "_summary" || name == "_elements") echoed.emplace_back(name, value);
    }
    if (Status taken = subset::take(call.parameters, shape); !taken.ok()) return invalid(taken.message());
    IssueList ignored;
    for (const auto& [name, value] : call.parameters) {
      if (name == "_count") {
        auto count = fhirhttp::positiveInteger(value);
        if (!count) return outcomeAnswer(400, "invalid", "_count '" + value + "' is not a positive integer");
        query.count = std::min<size_t>(static_cast<size_t>(*count), kMaxCount);
        echoed.emplace_back(name, std::to_string(query.count));
      } else if (name == "_since") {
        auto since = fhirhttp::parseInstantMs(value);
        if (!since) return outcomeAnswer(400, "invalid", "_since '" + value + "' is not an instant (2026-12-03T10:00:00Z)");
        query.since = fhirhttp::isoMs(*since);
        echoed.emplace_back(name, value);
      } else if (name == "_page") {
        query.before = parsePageKey(value);
        if (!query.before) return outcomeAnswer(400, "invalid", "_page '" + value + "' is not a page this gateway gave");
      } else if (fhirhttp::preferLenient(call.request)) {
        ignored.add(Issue{Severity::kWarning, "not-supported", "history parameter '" + name + "' is not supported and was ignored", {}, {}});
      } else {
        return outcomeAnswer(400, "not-supported", "history has no parameter '" + name + "' (_count, _since)");
      }
    }
    if (!query.type.empty() && !query.id.empty()) {
      // An instance the caller may not see has no history for it (404, as a read).
      auto current = context_.store->readResource(query.type, query.id);
      if (!current.ok()) return transient(current.message());
      if (!current->has_value()) return notFound(query.type + "/" + query.id + " is not known");
      auto seen = policy_.visible(access.caller, query.type, query.id, (*current)->json);
      if (!seen.ok()) return transient(seen.message());
      if (!seen->has_value()) return notFound(query.type + "/" + query.id + " is not known");
    }
    std::vector<std::pair<ResourceVersion, std::string>> page;  // version, JSON as the caller sees it
    std::optional<ResourceVersion> last_read;
    bool more = false;
    for (int round = 0; round < kMaxRounds && page.size() < query.count; ++round) {
      HistoryQuery step = query;
      step.count = query.count - page.size();
      if (last_read) step.before = last_read;
      auto versions = context_.store->history(step);
      if (!versions.ok()) return transient(versions.message());
      more = versions->size() == step.count;
      for (ResourceVersion& version : *versions) {
        last_read = version;
        if (!access.caller.open() && !access.caller.scopes.allows(auth::Interaction::kRead, version.type)) continue;
        auto seen = policy_.visible(access.caller, version.type, version.id, version.json);
        if (!seen.ok()) return transient(seen.message());
        if (!seen->has_value()) continue;
        auto shaped = subset::apply(shape, **seen);
        if (!shaped.ok()) return transient("_summary/_elements: " + shaped.message());
        page.emplace_back(std::move(version), std::move(*shaped));
      }
      if (!more) break;
    }
    const std::string path = context_.base_url + (call.type.empty() ? "" : "/" + call.type) +
                             (call.id.empty() ? "" : "/" + call.id) + "/_history";
    auto link = [&](const std::optional<ResourceVersion>& before) {
      std::string url = path;
      char separator = '?';
      for (const auto& [name, value] : echoed) {
        url += separator + percentEncode(name) + "=" + percentEncode(value);
        separator = '&';
      }
      if (before) url += separator + std::string("_page=") + percentEncode(pageKey(*before));
      return url;
    };
    std::string out = R"({"resourceType":"Bundle","type":"history","link":[{"relation":"self","url":)" +
                      jsonString(link(query.before)) + "}";
    if (more && last_read) out += R"(,{"relation":"next","url":)" + jsonString(link(last_read)) + "}";
    out += R"(],"entry":[)";
    bool first = true;
    for (const auto& [version, text] : page) {
      if (!first) out.push_back(',');
      first = false;
      const std::string reference = version.type + "/" + version.id;
      out += R"({"fullUrl":)" + jsonString(context_.base_url + "/" + reference) + R"(,"resource":)" + text;
      out += R"(,"request":{"method":")" + std::string(version.version == 1 ? "POST" : "PUT") + R"(","url":)" +
             jsonString(version.version == 1 ? version.type : reference) + "}";
      out += R"(,"response":{"status":")" + std::string(version.version == 1 ? "201 Created" : "200 OK") +
             R"(","etag":"W/\")" + std::to_string(version.version) + R"(\"","lastModified":)" +
             jsonString(version.updated_at) + "}}";
    }
    if (!ignored.empty()) {
      if (!first) out.push_back(',');
      out += R"({"resource":)" + toOperationOutcomeJson(ignored) + "}";
    }
    out += "]}";
    return Answer{200, "application/fhir+json", out};
  }

 private:
  // One version as the caller may see it, with its headers; 304 for a matching conditional read.
  Answer answerVersion(FhirCall& call, const std::string& json, int64_t version) {
    auto seen = policy_.visible(call.access.caller, call.type, call.id, json);
    if (!seen.ok()) return transient(seen.message());
    if (!seen->has_value()) return notFound(call.type + "/" + call.id + " is not known");
    subset::Shape shape;
    if (Status taken = subset::take(call.parameters, shape); !taken.ok()) return invalid(taken.message());
    auto shaped = subset::apply(shape, **seen);
    if (!shaped.ok()) return transient("_summary/_elements: " + shaped.message());
    const std::string updated = lastUpdatedOf(json);
    fhirhttp::addVersionHeaders(call.access, version, updated);
    call.access.headers.emplace_back(
        "Content-Location", context_.base_url + "/" + call.type + "/" + call.id + "/_history/" + std::to_string(version));
    if (fhirhttp::notModified(call.request, version, updated)) return Answer{304, "application/fhir+json", ""};
    return Answer{200, "application/fhir+json", std::move(*shaped)};
  }

  static Answer transient(const std::string& why) { return outcomeAnswer(503, "transient", why); }
  // A subset::take error ("invalid: ...") as a 400.
  static Answer invalid(const std::string& message) {
    return outcomeAnswer(400, "invalid", message.rfind("invalid: ", 0) == 0 ? message.substr(9) : message);
  }
  static Answer notFound(const std::string& why) { return outcomeAnswer(404, "not-found", why); }

  ServerContext& context_;
  const auth::AccessPolicy& policy_;
};

}  // namespace

const std::vector<std::string>& storedResourceTypes() {
  static const std::vector<std::string> kTypes = {
      "Patient", "Coverage", "Claim", "ServiceRequest", "Task", "Communication", "CarePlan", "CareTeam", "Goal",
      "Condition", "Observation", "RiskAssessment", "EpisodeOfCare", "Group", "Organization", "Practitioner",
      "Provenance", "MeasureReport"};
  return kTypes;
}

void registerReadRoutes(FhirRoutes& routes, ServerContext& context, const auth::AccessPolicy& policy) {
  auto reads = std::make_shared<ReadRoutes>(context, policy);
  for (const std::string& type : storedResourceTypes()) {
    FhirTypeRoutes& entry = routes.type(type);
    entry.versioned = true;
    entry.conditional_read = true;
    routes.add(type, FhirInteraction::kRead, [reads](FhirCall& call) { return reads->read(call); });
    routes.add(type, FhirInteraction::kVread, [reads](FhirCall& call) { return reads->vread(call); });
    routes.add(type, FhirInteraction::kHistoryInstance, [reads](FhirCall& call) { return reads->history(call); });
    routes.add(type, FhirInteraction::kHistoryType, [reads](FhirCall& call) { return reads->history(call); });
  }
  routes.addSystem(FhirInteraction::kHistorySystem, [reads](FhirCall& call) { return reads->history(call); });
}

}  // namespace fhir::gateway
