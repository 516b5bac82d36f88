// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

#include "gateway/dispatch/router.h"
#include "gateway/ingest/cpu_gate.h"
#include "gateway/subscriptions/matching.h"
#include "gateway/ingest/contributions.h"
#include "gateway/merge/merge_service.h"
#include "mappers/common/ids.h"
#include "mappers/readers/hl7v2/hl7v2_reader.h"

namespace fhir::gateway {
namespace {

// Payers from the configuration, coverage from the store.
class GatewayDirectory final : public mappers::Directory {
 public:
  GatewayDirectory(const Config& config, Store& store) : config_(config), store_(store) {}

  // mappers::Directory
  std::optional<mappers::PayerInfo> payer(std::string_view payer_id) const override {
    const PayerConfig* payer = config_.findPayer(payer_id);
    if (payer == nullptr) return std::nullopt;
    return mappers::PayerInfo{payer->id, payer->name, payer->identifier_system, payer->identifier_value};
  }
  // A store failure cannot be said through mappers::Directory (whose answers are data): it is
  // kept, the mapper sees no coverage, and the caller turns the whole mapping into a 503
  // (failure()), never into "no coverage".
  std::vector<mappers::CoverageFact> coverageOf(std::string_view patient_id) const override {
    auto facts = store_.coverageOf(patient_id);
    if (facts.ok()) return std::move(*facts);
    noteFailure(facts.message());
    return {};
  }

  // The stored JSON of a resource for MapOptions::stored_resource, with the same failure rule.
  std::optional<std::string> storedResource(const std::string& type, const std::string& id) const {
    auto stored = store_.readResource(type, id);
    if (!stored.ok()) {
      noteFailure(stored.message());
      return std::nullopt;
    }
    if (!stored->has_value()) return std::nullopt;
    return std::move((*stored)->json);
  }

  // The first store failure met while mapping, if any.
  std::optional<std::string> failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }

 private:
  void noteFailure(const std::string& message) const {
    std::lock_guard lock(mutex_);
    if (!failure_) failure_ = message;
  }

  const Config& config_;
  Store& store_;
  mutable std::mutex mutex_;
  mutable std::optional<std::string> failure_;
};

Answer outcomeAnswer(int status, const IssueList& issues) {
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues)};
}

// The store failed (disk, SQL, closing): 503 with Retry-After, nothing quarantined; the sender
// posts again (an event it had committed is answered from the store, idempotently).
constexpr int kStoreRetryAfterSeconds = 1;

Answer storeFailureOf(const IssueList& issues) {
  Answer answer = outcomeAnswer(503, issues);
  answer.retry_after = kStoreRetryAfterSeconds;
  return answer;
}

Answer storeFailure(const std::string& message) {
  IssueList issues;
  issues.add(Issue{Severity::kFatal, "transient", "the store failed: " + message, {}, {}});
  return storeFailureOf(issues);
}

std::string_view mediaType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  return media;
}

bool isIsoDate(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return text.substr(5, 2) >= "01" && text.substr(5, 2) <= "12" && text.substr(8, 2) >= "01" && text.substr(8, 2) <= "31";
}

bool isJsonContentType(std::string_view content_type) {
  std::string_view media = mediaType(content_type);
  return media == "application/json" || media == "application/fhir+json";
}

// The media type each payer format arrives in (contracts/http-api.md).
std::string_view mediaTypeOfSpec(std::string_view spec) {
  if (spec == "northwind-commercial") return "application/x-ndjson";
  if (spec == "x12-837p") return "application/edi-x12";
  return "text/csv";
}

// Passes a body through unchanged and keeps its first line with its line ending: the CSV
// header that a record cut out of the file needs to be replayed alone.
class FirstLineRecorder : public std::streambuf {
 public:
  explicit FirstLineRecorder(std::istream& source) : source_(source) {}
  const std::string& firstLine() const { return first_line_; }

 protected:
  int_type underflow() override {
    source_.read(buffer_, sizeof buffer_);
    const auto got = static_cast<size_t>(source_.gcount());
    if (got == 0) return traits_type::eof();
    if (!line_done_) {
      const std::string_view chunk(buffer_, got);
      const size_t end = chunk.find('\n');
      line_done_ = end != std::string_view::npos;
      first_line_.append(chunk.substr(0, line_done_ ? end + 1 : got));
    }
    setg(buffer_, buffer_, buffer_ + got);
    return traits_type::to_int_type(buffer_[0]);
  }

 private:
  std::istream& source_;
  char buffer_[1 << 14];
  std::string first_line_;
  bool line_done_ = false;
};

// A stored resource as mapped: without the meta the store adds.
void dropStoredMeta(json::Document& resource) {
  if (json::Value* meta = json::find(resource, "meta")) {
    meta->RemoveMember("versionId");
    meta->RemoveMember("lastUpdated");
  }
}

// While a quarantined payload is replayed on this thread, the channel's rejections of it are
// recorded against its quarantine entry instead of quarantining it a second time.
struct ReplayCapture {
  std::string quarantine_id;
  bool record = false;    // the entry is one record of a file: its rejections are the entry's
  bool rejected = false;  // the channel rejected it again
};
thread_local ReplayCapture* t_replay = nullptr;

// Sets t_replay for one replay and restores it however the replay ends.
class ReplayScope {
 public:
  explicit ReplayScope(ReplayCapture& capture) : previous_(t_replay) { t_replay = &capture; }
  ~ReplayScope() { t_replay = previous_; }
  ReplayScope(const ReplayScope&) = delete;
  ReplayScope& operator=(const ReplayScope&) = delete;

 private:
  ReplayCapture* previous_;
};

// A channel a quarantined payload can be replayed through. `argument` is what follows ':' in
// the quarantine row's channel (the payer id of "claims:<payer>").
using ReplayChannel = Answer (*)(Pipeline& pipeline, const std::string& argument, std::string_view payload,
                                 std::string_view content_type);

// Replay dispatch by channel name: a new ingest channel is one line here.
const std::map<std::string, ReplayChannel, std::less<>>& replayChannels() {
  static const std::map<std::string, ReplayChannel, std::less<>> kChannels = {
      {"econsult", [](Pipeline& p, const std::string&, std::string_view body, std::string_view type) {
         return p.ingestEconsult(body, type);
       }},
      {"care-management", [](Pipeline& p, const std::string&, std::string_view body, std::string_view type) {
         return p.ingestCareManagement(body, type);
       }},
      {"claims", [](Pipeline& p, const std::string& payer, std::string_view body, std::string_view type) {
         return p.ingestPayerFile("claims", payer, body, type);
       }},
      {"roster", [](Pipeline& p, const std::string& payer, std::string_view body, std::string_view type) {
         return p.ingestPayerFile("roster", payer, body, type);
       }},
  };
  return kChannels;
}

ReplayOutcome notReplayable(int status, const std::string& code, const std::string& why, const std::string& result) {
  IssueList issues;
  issues.add(Issue{Severity::kError, code, why, {}, {}});
  return ReplayOutcome{outcomeAnswer(status, issues), result};
}

// A refused payer file: its first kRefusedPrefixBytes for quarantine (`truncated` when more
// followed). The rest is read and dropped, so the connection can carry the next request.
constexpr size_t kRefusedPrefixBytes = 1 << 20;

// Reads what is left of `body` and drops it; true when there was something.
bool discardRest(std::istream& body) {
  bool any = false;
  char sink[1 << 14];
  while (body.read(sink, sizeof sink), body.gcount() > 0) any = true;
  return any;
}

std::string refusedBodyPrefix(std::istream& body, bool& truncated) {
  std::string prefix(kRefusedPrefixBytes, '\0');
  body.read(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  prefix.resize(static_cast<size_t>(body.gcount()));
  truncated = discardRest(body);
  return prefix;
}

// The source-record digest the engine puts in a mapped Bundle's Provenance (its last entry);
// the hash of `bundle_json` when there is none.
std::string sourceDigestOf(const json::Value& bundle, const std::string& bundle_json) {
  const json::Value& entries = bundle["entry"];
  if (!entries.Empty()) {
    const json::Value& provenance = entries[entries.Size() - 1]["resource"];
    const json::Value* entities = json::find(provenance, "entity");
    const json::Value* extensions = entities && entities->IsArray() && !entities->Empty() ? json::find((*entities)[0], "extension") : nullptr;
    if (extensions && extensions->IsArray()) {
      for (const json::Value& extension : extensions->GetArray()) {
        if (json::getString(extension, "url").value_or("").ends_with("/source-record-digest")) {
          if (auto digest = json::getString(extension, "valueString")) return std::string(*digest);
        }
      }
    }
  }
  return mappers::sha256Hex(bundle_json);
}

// Coverage resources of a mapped Bundle as routing facts.
std::vector<mappers::CoverageFact> coverageFacts(const json::Value& bundle, const std::string& payer_id) {
  std::vector<mappers::CoverageFact> facts;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Coverage") continue;
    mappers::CoverageFact fact;
    fact.coverage_id = std::string(json::getString(resource, "id").value_or(""));
    fact.payer_id = payer_id;
    fact.member_id = std::string(json::getString(resource, "subscriberId").value_or(""));
    if (const json::Value* beneficiary = json::find(resource, "beneficiary")) {
      std::string_view reference = json::getString(*beneficiary, "reference").value_or("");
      if (reference.rfind("Patient/", 0) == 0) fact.patient_id = std::string(reference.substr(8));
    }
    if (const json::Value* period = json::find(resource, "period")) {
      fact.start = std::string(json::getString(*period, "start").value_or(""));
      fact.end = std::string(json::getString(*period, "end").value_or(""));
    }
    if (const json::Value* type = json::find(resource, "type"); type && json::find(*type, "coding")) {
      const json::Value& codings = (*type)["coding"];
      if (codings.IsArray() && !codings.Empty()) fact.line_of_business = std::string(json::getString(codings[0], "code").value_or(""));
    }
    if (!fact.coverage_id.empty() && !fact.patient_id.empty()) facts.push_back(std::move(fact));
  }
  return facts;
}

// Queues one notification per live subscription whose topic fires for a changed resource and
// whose filters match. `claim_facts` holds, per routed Claim id, the facts of that claim
// (its payer and code); a Claim that was not routed announces nothing.
ChangeHook subscriptionHook(TopicCatalogPtr topics, std::vector<Subscription> subscriptions, EventFacts facts,
                            std::map<std::string, EventFacts> claim_facts, bool claims_need_route = true) {
  return [topics = std::move(topics), subscriptions = std::move(subscriptions),
          context = ChangeContext{std::move(facts), std::move(claim_facts), claims_need_route}](
             const std::vector<ResourceChangeRecord>& changes, std::vector<OutboxWrite>& outbox) {
    matchChanges(*topics, subscriptions, context, changes, outbox);
  };
}

// ---------------------------------------------------------------------------------------------
// E-consult (mappers/specs/econsult.json, econsult-v2.json): what routing and subscriptions need,
// read back from the mapped Bundle.

// The current time as an HL7 v2 DTM in UTC (ACK MSH-7).
std::string hl7Now() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y%m%d%H%M%S+0000", &parts);
  return buffer;
}

bool isHl7v2ContentType(std::string_view content_type) { return mediaType(content_type) == "x-application/hl7-v2+er7"; }

const json::Value* bundleEntry(const json::Value& bundle, std::string_view reference) {
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    const std::string key = std::string(json::getString(resource, "resourceType").value_or("")) + "/" +
                            std::string(json::getString(resource, "id").value_or(""));
    if (key == reference) return &resource;
  }
  return nullptr;
}

std::string firstCodingOf(const json::Value& concept_value, bool with_system) {
  const json::Value* codings = json::find(concept_value, "coding");
  if (!codings || !codings->IsArray() || codings->Empty()) return {};
  std::string code(json::getString((*codings)[0], "code").value_or(""));
  if (!with_system) return code;
  return std::string(json::getString((*codings)[0], "system").value_or("")) + "|" + code;
}

std::string identifierValue(const json::Value& resource, std::string_view system) {
  const json::Value* identifiers = json::find(resource, "identifier");
  if (!identifiers || !identifiers->IsArray()) return {};
  for (const json::Value& identifier : identifiers->GetArray()) {
    if (json::getString(identifier, "system") == system) return std::string(json::getString(identifier, "value").value_or(""));
  }
  return {};
}

// ---- care-management (POST /ingest/care-management) and e-consult: routing facts -------------

// The event's own Coverage resources as routing facts; the payer is the payer-id identifier of
// the Organization in Coverage.payor (as both event specs write it).
std::vector<mappers::CoverageFact> eventCoverage(const json::Value& bundle) {
  std::vector<mappers::CoverageFact> facts = coverageFacts(bundle, "");
  for (mappers::CoverageFact& fact : facts) {
    const json::Value* coverage = bundleEntry(bundle, "Coverage/" + fact.coverage_id);
    const json::Value* payors = coverage ? json::find(*coverage, "payor") : nullptr;
    if (payors && payors->IsArray() && !payors->Empty()) {
      if (const json::Value* payer = bundleEntry(bundle, json::getString((*payors)[0], "reference").value_or(""))) {
        fact.payer_id = identifierValue(*payer, "https://fhir.alignment-gateway.org/CodeSystem/payer-id");
      }
    }
  }
  return facts;
}

// Points each routable billing Claim of a mapped Bundle at the coverage routing chose (the
// mapper's pick may be another one of an ambiguous timeline).
void settleBilling(const Config& config, json::Document& bundle, const std::vector<mappers::BillingFact>& billing) {
  for (const mappers::BillingFact& fact : billing) {
    RouteDecision decision = routeClaim(config, fact);
    if (decision.payer != nullptr) settleClaim(bundle, fact.claim_id, fact.coverage->coverage_id, decision.payer->id);
  }
}

// Who an event's contributions come from: its source, ranked by occurredAt (in UTC).
ContributionSource eventSource(std::string_view source, std::string_view event_id, std::string_view occurred_at) {
  return ContributionSource{"ehr", std::string(source), "", merge::utcRank(occurred_at),
                            std::string(source) + '\x1f' + std::string(event_id)};
}

// The billing Claims of a mapped Bundle as routing facts (code, date, billing NPI), each with the
// coverage valid on its date of service among `known`.
std::vector<mappers::BillingFact> billingFacts(const json::Value& bundle, const std::vector<mappers::CoverageFact>& known) {
  std::vector<mappers::BillingFact> out;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Claim") continue;
    const json::Value* items = json::find(resource, "item");
    if (!items || !items->IsArray() || items->Empty()) continue;
    const json::Value& item = (*items)[0];
    mappers::BillingFact fact;
    fact.claim_id = std::string(json::getString(resource, "id").value_or(""));
    fact.date_of_service = std::string(json::getString(item, "servicedDate").value_or(""));
    if (const json::Value* product = json::find(item, "productOrService")) {
      const std::string system_code = firstCodingOf(*product, true);
      fact.system = system_code.substr(0, system_code.find('|'));
      fact.code = system_code.find('|') == std::string::npos ? std::string() : system_code.substr(system_code.find('|') + 1);
    }
    if (const json::Value* provider = json::find(resource, "provider")) {
      if (const json::Value* practitioner = bundleEntry(bundle, json::getString(*provider, "reference").value_or(""))) {
        fact.npi = identifierValue(*practitioner, "http://hl7.org/fhir/sid/us-npi");
      }
    }
    CoverageChoice choice = chooseCoverage(known, fact.date_of_service);
    fact.coverage = std::move(choice.coverage);
    fact.coverage_reason = std::move(choice.reason);
    out.push_back(std::move(fact));
  }
  return out;
}

struct EconsultFacts {
  std::string patient_id;
  std::vector<mappers::CoverageFact> coverage;  // declared by the event
  std::vector<mappers::BillingFact> billing;
  EventFacts event;
};

// A store failure reading the patient's coverage is an error, never "no coverage".
Result<EconsultFacts> econsultFacts(const json::Value& bundle, Store& store) {
  static constexpr std::string_view kNpi = "http://hl7.org/fhir/sid/us-npi";
  EconsultFacts out;
  out.coverage = eventCoverage(bundle);
  for (const mappers::CoverageFact& fact : out.coverage) out.event.payers.insert(fact.payer_id);
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    const std::string_view type = json::getString(resource, "resourceType").value_or("");
    const std::string id(json::getString(resource, "id").value_or(""));
    if (type == "Patient" && out.patient_id.empty()) out.patient_id = id;
    if (type == "Organization") {
      const json::Value* types = json::find(resource, "type");
      if (types && types->IsArray() && !types->Empty() && firstCodingOf((*types)[0], false) == "prov") {
        out.event.practices.insert(identifierValue(resource, kNpi));
      }
    }
    if (type == "ServiceRequest") {
      if (const json::Value* reasons = json::find(resource, "reasonCode"); reasons && reasons->IsArray()) {
        for (const json::Value& reason : reasons->GetArray()) out.event.codes.insert(firstCodingOf(reason, true));
      }
    }
  }
  out.event.patient = "Patient/" + out.patient_id;
  auto stored = store.coverageOf(out.patient_id);
  if (!stored.ok()) return stored.error();
  out.billing = billingFacts(bundle, withEventCoverage(std::move(*stored), out.coverage));
  for (const mappers::BillingFact& billing : out.billing) out.event.codes.insert(billing.system + "|" + billing.code);
  return out;
}

// Hands each billing Claim to its payer's outbox, or keeps it waiting as unroutable with the
// reason (the same rules as e-consult billing: routeClaim, payerBundle).
// A store failure reading what the payer's Bundle references is the commit's failure.
Status dispatchBilling(const Config& config, Store& store, const std::string& base_url, const json::Value& bundle,
                       const std::vector<mappers::BillingFact>& billing, const std::string& patient_id,
                       const EventFacts& facts, IngestCommit& commit, std::map<std::string, EventFacts>& claim_facts) {
  for (const mappers::BillingFact& fact : billing) {
    RouteDecision decision = routeClaim(config, fact);
    if (decision.payer != nullptr) {
      EventFacts claim = facts;
      claim.payers = {decision.payer->id};
      claim.codes = {fact.system + "|" + fact.code};
      claim_facts.emplace(fact.claim_id, std::move(claim));
      commit.routed.push_back(RoutedClaim{fact.claim_id, patient_id, decision.payer->id, fact.date_of_service, fact.code});
      auto payer_bundle = payerBundle(bundle, fact.claim_id, store, base_url);
      if (!payer_bundle.ok()) return payer_bundle.error();
      commit.outbox.push_back(OutboxWrite{payerDestination(decision.payer->id), "claim", std::move(*payer_bundle)});
      continue;
    }
    IssueList reason;
    reason.atExpression(Severity::kWarning, "business-rule", "Claim", decision.reason);
    commit.unroutable.push_back(UnroutableWrite{fact.claim_id, patient_id, fact.date_of_service, fact.code, decision.reason,
                                                toOperationOutcomeJson(reason)});
  }
  return Status::Ok();
}

// A stored ACM Claim with the same id (patient, specialist, calendar month) that another event
// created: the second ACM of that month (contracts/econsult-event.md). Returns the issue; an
// error when the store failed reading the stored Claim.
Result<std::optional<IssueList>> secondAcm(Store& store, const json::Value& bundle, const json::Value& event) {
  static constexpr std::string_view kAcmSystem = "https://fhir.alignment-gateway.org/CodeSystem/alignment-billing";
  auto identifierOf = [](const json::Value& claim) {
    const json::Value* identifiers = json::find(claim, "identifier");
    if (!identifiers || !identifiers->IsArray() || identifiers->Empty()) return std::string();
    return std::string(json::getString((*identifiers)[0], "system").value_or("")) + "|" +
           std::string(json::getString((*identifiers)[0], "value").value_or(""));
  };
  for (const mappers::BillingFact& fact : billingFacts(bundle, {})) {
    if (fact.system != kAcmSystem || fact.code != "ACM") continue;
    auto stored = store.readResource("Claim", fact.claim_id);
    if (!stored.ok()) return stored.error();
    if (!stored->has_value()) continue;
    json::Document previous;
    json::ParseError parse_error;
    if (!json::parse((*stored)->json, previous, parse_error)) {
      return Error{"stored Claim/" + fact.claim_id + " is unreadable: " + parse_error.describe()};
    }
    const json::Value* claim = nullptr;
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      if (json::getString(entry["resource"], "id") == fact.claim_id) claim = &entry["resource"];
    }
    if (claim == nullptr || identifierOf(previous) == identifierOf(*claim)) continue;
    // The billing entry of this Claim: the ACM entry with its date of service.
    std::string location = "$.episode.billing";
    const json::Value* episode = json::find(event, "episode");
    const json::Value* entries = episode ? json::find(*episode, "billing") : nullptr;
    for (rapidjson::SizeType index = 0; entries && entries->IsArray() && index < entries->Size(); ++index) {
      const json::Value& item = (*entries)[index];
      if (json::getString(item, "code") == "ACM" && json::getString(item, "dateOfService") == fact.date_of_service) {
        location += "[" + std::to_string(index) + "]";
        break;
      }
    }
    IssueList issues;
    issues.atLocation(Severity::kError, "business-rule", location,
                      location + ": a second ACM for the same patient, specialist and calendar month (" +
                          fact.date_of_service.substr(0, 7) + "); the first came with event " +
                          identifierOf(previous).substr(identifierOf(previous).find('|') + 1));
    return std::optional<IssueList>(std::move(issues));
  }
  return std::optional<IssueList>();
}

// The answer of an accepted event: the stored Bundle, with warnings as a last OperationOutcome entry.
std::string answerWithWarnings(const json::Value& bundle, const IssueList& warnings) {
  json::Document answer;
  answer.CopyFrom(bundle, answer.GetAllocator());
  json::Value entry(rapidjson::kObjectType);
  json::addMember(entry, "resource", toOperationOutcome(warnings, answer.GetAllocator()), answer.GetAllocator());
  answer["entry"].PushBack(entry, answer.GetAllocator());
  return json::serialize(answer);
}

// The commit of a posted JSON event: 202 with the stored Bundle, warnings as a last entry.
IngestCommit acceptedEvent(std::string_view channel, const std::string& idempotency_key, std::string_view body,
                           const json::Value& bundle, const IssueList& warnings) {
  IngestCommit commit;
  commit.channel = std::string(channel);
  commit.idempotency_key = idempotency_key;
  commit.payload = std::string(body);
  commit.status = 202;
  commit.answer = warnings.empty() ? json::serialize(bundle) : answerWithWarnings(bundle, warnings);
  return commit;
}

// The ACM slots an event takes (one ACM per patient, specialist and calendar month: the Claim id
// says which), owned by the event's Claim identifier; the store refuses a commit whose slot
// another event holds (Store: unique slots), so two concurrent second ACMs cannot both pass.
std::vector<UniqueSlot> acmSlots(const json::Value& bundle) {
  std::vector<UniqueSlot> slots;
  for (const mappers::BillingFact& fact : billingFacts(bundle, {})) {
    if (fact.code != "ACM") continue;
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      const json::Value& claim = entry["resource"];
      if (json::getString(claim, "id") != fact.claim_id) continue;
      const json::Value* identifiers = json::find(claim, "identifier");
      std::string owner;
      if (identifiers && identifiers->IsArray() && !identifiers->Empty()) {
        owner = std::string(json::getString((*identifiers)[0], "system").value_or("")) + "|" +
                std::string(json::getString((*identifiers)[0], "value").value_or(""));
      }
      slots.push_back(UniqueSlot{"acm|" + fact.claim_id, owner});
    }
  }
  return slots;
}

// Subscription filter facts of a care-management event: patient, payers, practice, codes.
EventFacts careManagementFacts(const json::Value& bundle, const json::Value& event,
                               const std::vector<mappers::CoverageFact>& coverage) {
  EventFacts facts;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    std::string_view type = json::getString(resource, "resourceType").value_or("");
    if (type == "Patient") facts.patient = "Patient/" + std::string(json::getString(resource, "id").value_or(""));
    if (type != "Claim" && type != "Condition") continue;
    const json::Value* code = type == "Claim" ? nullptr : json::find(resource, "code");
    if (type == "Claim" && json::find(resource, "item") && !resource["item"].Empty()) code = json::find(resource["item"][0], "productOrService");
    if (!code || !json::find(*code, "coding") || !(*code)["coding"].IsArray() || (*code)["coding"].Empty()) continue;
    const json::Value& coding = (*code)["coding"][0];
    facts.codes.insert(std::string(json::getString(coding, "system").value_or("")) + "|" +
                       std::string(json::getString(coding, "code").value_or("")));
  }
  for (const mappers::CoverageFact& fact : coverage) facts.payers.insert(fact.payer_id);
  if (const json::Value* panel = json::find(event, "panel")) {
    if (auto practice = json::getString(*panel, "practiceNpi")) facts.practices.insert(std::string(*practice));
  }
  return facts;
}

}  // namespace

Pipeline::Pipeline(const Config& config, StorePtr store, ValidatorPtr validator, Metrics& metrics,
                   std::function<void()> on_outbox)
    : config_(config),
      store_(std::move(store)),
      validator_(std::move(validator)),
      metrics_(metrics),
      on_outbox_(std::move(on_outbox)) {
  // Precedence of sources (fhir_profiles/alignment/merge-rules.json), merged in the store's
  // ingest transaction.
  auto rules = merge::MergeRules::load(merge::MergeRules::defaultPath());
  if (!rules.ok()) {
    merge_status_ = Error{rules.message()};
    rules = merge::MergeRules::parse(R"({"resources":{}})");
  }
  merge_rules_ = std::make_shared<const merge::MergeRules>(std::move(*rules));
  store_->setMergeHook(merge::makeMergeHook(merge_rules_));
}

Answer Pipeline::reject(std::string_view channel, std::string_view payload,
                        std::string_view content_type, int status, const IssueList& issues,
                        bool truncated) {
  metrics_.countIngest(std::string(channel), "rejected");
  QuarantineWrite write{std::string(channel), std::string(content_type), std::string(payload), truncated,
                        toOperationOutcomeJson(issues)};
  auto id = keep(std::move(write));
  if (!id.ok()) return storeFailure(id.message());
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues, *id)};
}

Answer Pipeline::ingestPayerFile(std::string_view kind, const std::string& payer_id, std::string_view body,
                                 std::string_view content_type, std::string_view as_of) {
  std::istringstream input{std::string(body)};
  return ingestPayerFile(kind, payer_id, input, content_type, {}, as_of);
}

Answer Pipeline::ingestPayerFile(std::string_view kind, const std::string& payer_id, std::istream& body,
                                 std::string_view content_type, const BodyEnded& body_ended, std::string_view as_of) {
  const std::string channel = std::string(kind) + ":" + payer_id;
  auto refuse = [&](int status, const IssueList& issues) {
    bool truncated = false;
    const std::string prefix = refusedBodyPrefix(body, truncated);
    return reject(channel, prefix, content_type, status, issues, truncated);
  };
  const PayerConfig* payer = config_.findPayer(payer_id);
  if (payer == nullptr) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-found", "payer '" + payer_id + "' is not configured", {}, {}});
    return refuse(404, issues);
  }
  // asOf: the date a roster describes (payer-formats.md); required in `full` mode.
  const bool full_roster = kind == "roster" && payer->roster_mode == "full";
  if (!as_of.empty() && !isIsoDate(as_of)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "value", "asOf '" + std::string(as_of) + "' is not a date (YYYY-MM-DD)", {}, {"asOf"}});
    return refuse(400, issues);
  }
  if (full_roster && as_of.empty()) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "required",
                     "payer '" + payer_id + "' sends full rosters (rosterMode full): asOf=YYYY-MM-DD is required", {}, {"asOf"}});
    return refuse(400, issues);
  }
  const std::string spec = kind == "roster" ? "roster" : payer->format;
  if (!specs_ || !specs_->has(spec)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported", "no mapping spec '" + spec + "' is loaded", {}, {}});
    return refuse(422, issues);
  }
  if (mediaType(content_type) != mediaTypeOfSpec(spec)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported",
                     "Content-Type '" + std::string(content_type) + "' is not accepted for format " + spec + ": send " +
                         std::string(mediaTypeOfSpec(spec)),
                     {}, {}});
    return refuse(415, issues);
  }

  GatewayDirectory directory(config_, *store_);
  mappers::engine::MapOptions options;
  options.payer_id = payer_id;
  options.directory = &directory;
  options.source_name = "POST /ingest/" + std::string(kind) + "/" + payer_id;
  options.base_url = base_url_;
  options.validator = validator_.get();
  options.max_record_bytes = static_cast<size_t>(config_.limits.max_record_bytes);
  // Accepted records are staged in batches as the body streams in and published only once the
  // body has ended as declared (publishStaged); the answer's id lists are kept as JSON text
  // (about 40 bytes per record).
  auto staged_file = store_->beginStagedFile(channel);
  if (!staged_file.ok()) {
    discardRest(body);
    return storeFailure(staged_file.message());
  }
  const int64_t file = *staged_file;
  std::vector<StagedRecord> staged;
  int64_t staged_count = 0;
  std::string bundle_ids;
  std::string quarantine_ids;
  std::string last_quarantine_id;
  std::string store_error;
  FirstLineRecorder recorder(body);
  std::istream input(&recorder);
  const bool keeps_header = mediaTypeOfSpec(spec) == "text/csv";
  auto stageBatch = [&]() {
    if (staged.empty() || !store_error.empty()) return staged.clear();
    Status written = store_->stageRecords(file, std::move(staged));
    staged.clear();
    if (!written.ok()) store_error = written.message();
  };
  auto appendId = [](std::string& list, std::string_view id) {
    if (!list.empty()) list.push_back(',');
    list.push_back('"');
    list.append(id);
    list.push_back('"');
  };
  auto summary = specs_->mapSource(
      spec, input, options,
      [&](mappers::engine::MappedBundle& mapped) {
        if (store_error.empty()) {
          if (auto failure = directory.failure()) store_error = *failure;  // mapped without what the store holds
        }
        if (!store_error.empty()) return;  // the answer is a 503; the rest of the body is only read
        auto bundle_id = json::getString(mapped.bundle, "id");
        appendId(bundle_ids, bundle_id ? *bundle_id : std::string_view(mapped.record_id));
        staged.push_back(StagedRecord{++staged_count, mapped.record_id, json::serialize(mapped.bundle)});
        if (staged.size() >= kPayerFileBatch) stageBatch();
      },
      [&](mappers::engine::Rejection& rejected) {
        if (store_error.empty()) {
          if (auto failure = directory.failure()) store_error = *failure;  // not the record's fault
        }
        if (!store_error.empty()) return;
        metrics_.countIngest(channel, "rejected");
        // A record keeps what a replay needs to read it alone (the CSV header; an X12 claim's
        // envelope and transaction header, from the reader); a fatal rejection keeps what the
        // reader had of the body (the body itself is a stream, never held). A rejected record
        // is quarantined even when the body later ends early: it was received whole.
        QuarantineWrite write{channel, std::string(content_type), rejected.raw, !rejected.raw_sha256.empty(),
                              toOperationOutcomeJson(rejected.issues), !rejected.fatal,
                              keeps_header ? recorder.firstLine() : std::move(rejected.replay_prefix),
                              std::move(rejected.replay_suffix), std::move(rejected.raw_sha256)};
        auto id = keep(std::move(write));
        if (!id.ok()) {
          store_error = id.message();
          return;
        }
        appendId(quarantine_ids, *id);
        last_quarantine_id = *id;
      });
  // A stream that ended fatally (bad header, broken ISA) was not read to its end.
  discardRest(input);
  stageBatch();
  std::optional<BodyProblem> problem = body_ended ? body_ended() : std::nullopt;
  if (!summary.ok() || !store_error.empty() || problem || (summary.ok() && summary->fatal && summary->accepted == 0)) {
    dropStaged(file);
  }
  if (!summary.ok()) return storeFailure(summary.message());
  if (!store_error.empty()) return storeFailure(store_error);
  if (problem) {
    IssueList issues;
    issues.add(Issue{Severity::kError, problem->status == 408 ? "timeout" : "incomplete",
                     problem->text + "; nothing of this file was published (" + std::to_string(staged_count) +
                         " mapped records dropped)",
                     {}, {}});
    return Answer{problem->status, "application/fhir+json", toOperationOutcomeJson(issues)};
  }
  if (summary->fatal && summary->accepted == 0) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "structure", "nothing in the body could be read; see the quarantined record", {}, {}});
    return Answer{400, "application/fhir+json",
                  toOperationOutcomeJson(issues, last_quarantine_id.empty() ? std::optional<std::string_view>()
                                                                            : std::string_view(last_quarantine_id))};
  }
  Status published = publishStaged(kind, payer_id, channel, file, as_of, full_roster);
  dropStaged(file);
  if (!published.ok()) return storeFailure(published.message());
  std::string out = "{\"records\":" + std::to_string(summary->records) + ",\"accepted\":" + std::to_string(summary->accepted) +
                    ",\"rejected\":" + std::to_string(summary->rejected) + ",\"bundleIds\":[";
  out += bundle_ids;
  out += "],\"quarantineIds\":[";
  out += quarantine_ids;
  out += "]}";
  return Answer{200, "application/json", out};
}

Status Pipeline::publishStaged(std::string_view kind, const std::string& payer_id, const std::string& channel,
                               int64_t file, std::string_view as_of, bool full_roster) {
  std::vector<Subscription> live = registry_ != nullptr ? registry_->all() : std::vector<Subscription>{};
  std::set<std::string> touched_patients;
  // Roster: the Groups the file contributes to, and per Group the members it lists (one Group
  // version per file, written after the rows; a full roster ends the members it does not list).
  std::map<std::string, std::set<std::string>> groups;
  std::string row_keys;
  int64_t after = 0;
  for (;;) {
    auto records = store_->stagedRecords(file, after, kPayerFileBatch);
    if (!records.ok()) return records.error();
    if (records->empty()) break;
    std::vector<IngestCommit> batch;
    for (StagedRecord& record : *records) {
      after = record.seq;
      json::Document bundle;
      json::ParseError parse_error;
      if (!json::parse(record.bundle_json, bundle, parse_error)) return Error{"a staged Bundle is unreadable: " + parse_error.describe()};
      metrics_.countIngest(channel, "accepted");
      IngestCommit commit;
      commit.channel = channel;
      const std::string bundle_json = std::move(record.bundle_json);
      // A record sent again unchanged is the same event; a changed one is a new version. The
      // record's bytes decide (the Provenance's source digest), not the Bundle, whose
      // Provenance.recorded differs on every post.
      commit.idempotency_key = channel + '\x1f' + record.record_id + '\x1f' + sourceDigestOf(bundle, bundle_json);
      if (!as_of.empty()) commit.idempotency_key += '\x1f' + std::string(as_of);
      row_keys += commit.idempotency_key + '\n';
      commit.payload = bundle_json;
      commit.answer = bundle_json;
      commit.status = 200;
      EventFacts facts;
      facts.payers.insert(payer_id);
      for (const json::Value& entry : bundle["entry"].GetArray()) {
        const json::Value& resource = entry["resource"];
        const std::string type(json::getString(resource, "resourceType").value_or(""));
        const std::string id(json::getString(resource, "id").value_or(""));
        if (type == "Patient") facts.patient = "Patient/" + id;
        commit.resources.push_back(ResourceWrite{type, id, json::serialize(resource)});
      }
      // Patient, Coverage and Group are this payer's contributions, merged in the store with
      // what other sources said (issue 11); the patient is matched to known ones there (by
      // member id, or by the roster demographics key). A claim file adds evidence of coverage
      // on its dates of service.
      takeContributions(*merge_rules_, bundle,
                        ContributionSource{std::string(kind), payer_id, payer_id, std::string(as_of), record.record_id},
                        commit);
      commit.defer_groups = kind == "roster";
      if (kind != "roster") commit.coverage = claimEvidence(bundle, payer_id);
      for (const merge::Contribution& contribution : commit.contributions) {
        if (!contribution.patient_id.empty()) touched_patients.insert(contribution.patient_id);
        if (contribution.type == "Group") groups[contribution.id].insert("Patient/" + contribution.patient_id);
      }
      for (const FeedConfig& feed : config_.feeds) {
        commit.outbox.push_back(OutboxWrite{feedDestination(feed.id), "bundle", bundle_json});
      }
      if (topics_ && !live.empty()) commit.change_context = encodeChangeContext(ChangeContext{facts, {}, false});
      batch.push_back(std::move(commit));
    }
    auto committed = store_->commitIngestMany(std::move(batch));
    if (!committed.ok()) return committed.error();
    // A failure here answers the file 503: posted again, its rows are duplicates and their
    // patients' waiting claims are routed then.
    Status routed = routeWaitingClaims(touched_patients, true);
    if (!routed.ok()) return routed;
    touched_patients.clear();
    if (on_outbox_) on_outbox_();
  }
  if (!groups.empty()) {
    auto merged = store_->commitIngest(rosterGroupCommit(channel, payer_id, as_of, full_roster, groups, row_keys));
    if (!merged.ok()) return merged.error();
  }
  return Status::Ok();
}

void Pipeline::dropStaged(int64_t file) {
  // Not the request's failure: what was published is committed, and staged rows are never read
  // again (a start-up drops every staged file a previous process left). Logged and counted.
  Status dropped = store_->dropStagedFile(file);
  if (dropped.ok()) return;
  metrics_.countIngest("staging", "drop_failed");
  std::fprintf(stderr, "ingest: dropping staged payer file %lld failed (dropped at the next start): %s\n",
               static_cast<long long>(file), dropped.message().c_str());
}

Result<std::string> Pipeline::keep(QuarantineWrite write) {
  if (t_replay != nullptr && (!write.record || t_replay->record)) {
    t_replay->rejected = true;
    return t_replay->quarantine_id;
  }
  // limits.maxQuarantinePayloadBytes: the first bytes are kept, with the digest of the whole.
  const auto max_payload = static_cast<size_t>(config_.limits.max_quarantine_payload_bytes);
  if (write.payload.size() > max_payload) {
    if (write.payload_sha256.empty()) write.payload_sha256 = mappers::sha256Hex(write.payload);
    write.payload.resize(max_payload);
    write.truncated = true;
  }
  return store_->quarantine(std::move(write));
}

ReplayOutcome Pipeline::replayQuarantined(const std::string& quarantine_id) {
  auto entry = store_->readQuarantine(quarantine_id);
  if (!entry.ok()) return ReplayOutcome{storeFailure(entry.message()), "failed"};
  if (!entry->has_value()) return notReplayable(404, "not-found", "no quarantined payload " + quarantine_id, "not-found");
  const QuarantineEntry& kept = **entry;
  if (kept.truncated) {
    return notReplayable(422, "not-supported",
                         "only the first " + std::to_string(kept.payload.size()) +
                             " bytes of this oversized body were kept; it cannot be replayed (send it again)",
                         "not-replayable");
  }
  const size_t colon = kept.channel.find(':');
  const std::string name = kept.channel.substr(0, colon);
  const std::string argument = colon == std::string::npos ? std::string() : kept.channel.substr(colon + 1);
  auto channel = replayChannels().find(name);
  if (channel == replayChannels().end()) {
    return notReplayable(422, "not-supported", "payloads of channel '" + kept.channel + "' cannot be replayed",
                         "not-replayable");
  }
  // Claims quarantined before their interchange's envelope was kept with them.
  if (kept.record && kept.replay_prefix.empty() && mediaType(kept.content_type) == "application/edi-x12") {
    return notReplayable(422, "not-supported",
                         "this claim was cut out of its X12 interchange and cannot be read alone (it was kept "
                         "without the interchange's envelope); send the interchange again",
                         "not-replayable");
  }
  ReplayCapture capture{quarantine_id, kept.record};
  Answer answer;
  {
    ReplayScope scope(capture);
    answer = channel->second(*this, argument, kept.replay_prefix + kept.payload + kept.replay_suffix, kept.content_type);
  }
  const bool accepted = answer.status < 300 && !capture.rejected;
  const std::string result = accepted ? "accepted" : answer.status >= 500 ? "failed" : "rejected";
  auto recorded = store_->recordReplay(quarantine_id, answer.status, answer.body, accepted);
  if (!recorded.ok()) return ReplayOutcome{storeFailure(recorded.message()), "failed"};
  return ReplayOutcome{std::move(answer), result};
}

Result<std::optional<IngestCommit>> Pipeline::rerouteCommit(const UnroutableWrite& waiting,
                                                            const mappers::CoverageFact& coverage, const PayerConfig& payer,
                                                            const std::vector<Subscription>& live) {
  auto stored = store_->readResource("Claim", waiting.claim_id);
  if (!stored.ok()) return stored.error();
  if (!stored->has_value()) return std::optional<IngestCommit>();
  json::Document previous;
  json::ParseError parse_error;
  if (!json::parse((*stored)->json, previous, parse_error)) {
    return Error{"stored Claim/" + waiting.claim_id + " is unreadable: " + parse_error.describe()};
  }
  dropStoredMeta(previous);
  json::Document claim;
  claim.CopyFrom(previous, claim.GetAllocator());
  json::Value* insurance = json::find(claim, "insurance");
  if (insurance == nullptr || !insurance->IsArray() || insurance->Empty()) return std::optional<IngestCommit>();
  settleClaimResource(claim, claim.GetAllocator(), coverage.coverage_id, payer.id);
  if (validator_) {
    IssueList validation;
    validator_->validate(claim, ValidationRequest{}, validation);
    if (validation.hasErrors()) return std::optional<IngestCommit>();  // keeps waiting, with its reason
  }

  IngestCommit commit;
  commit.channel = "reroute";
  commit.idempotency_key = "reroute\x1f" + waiting.claim_id;
  commit.routes_unroutable = waiting.claim_id;
  commit.routed.push_back(RoutedClaim{waiting.claim_id, waiting.patient_id, payer.id, waiting.date_of_service, waiting.code});
  commit.status = 200;
  const std::string claim_json = json::serialize(claim);
  commit.payload = claim_json;
  commit.resources.push_back(ResourceWrite{"Claim", waiting.claim_id, claim_json});
  json::Document mapped;
  mapped.SetObject();
  json::Value entry(rapidjson::kObjectType);
  json::Value resource;
  resource.CopyFrom(claim, mapped.GetAllocator());
  json::addMember(entry, "resource", std::move(resource), mapped.GetAllocator());
  json::Value entries(rapidjson::kArrayType);
  entries.PushBack(entry, mapped.GetAllocator());
  json::addMember(mapped, "entry", std::move(entries), mapped.GetAllocator());
  auto payer_bundle = payerBundle(mapped, waiting.claim_id, *store_, base_url_);
  if (!payer_bundle.ok()) return payer_bundle.error();
  commit.outbox.push_back(OutboxWrite{payerDestination(payer.id), "claim", std::move(*payer_bundle)});

  // billing-routed fires now, when the claim reaches a payer's outbox, even when the new
  // version equals the old one (the coverage kept its id and only its period grew).
  if (topics_ && !live.empty()) {
    EventFacts facts;
    facts.patient = "Patient/" + waiting.patient_id;
    facts.payers = {payer.id};
    const json::Value* item = json::find(claim, "item");
    if (item != nullptr && item->IsArray() && !item->Empty()) {
      const json::Value* product = json::find((*item)[0], "productOrService");
      const json::Value* codings = product ? json::find(*product, "coding") : nullptr;
      if (codings != nullptr && codings->IsArray() && !codings->Empty()) {
        facts.codes = {std::string(json::getString((*codings)[0], "system").value_or("")) + "|" + waiting.code};
      }
    }
    std::map<std::string, EventFacts> claim_facts{{waiting.claim_id, facts}};
    const std::string previous_json = json::serialize(previous);
    subscriptionHook(topics_, live, facts, std::move(claim_facts))(
        {ResourceChangeRecord{"Claim", waiting.claim_id, previous_json, &claim_json}}, commit.outbox);
  }
  return std::optional<IngestCommit>(std::move(commit));
}

Status Pipeline::routeWaitingClaims(const std::set<std::string>& patients, bool check_routed) {
  const std::vector<Subscription> live = registry_ != nullptr ? registry_->all() : std::vector<Subscription>{};
  std::set<std::string> members;  // the patients and every patient linked to them
  for (const std::string& patient : patients) {
    auto cluster = store_->clusterOf(patient);
    if (!cluster.ok()) return Error{cluster.message()};
    members.insert(cluster->begin(), cluster->end());
  }
  for (const std::string& patient : members) {
    auto coverage = store_->coverageOf(patient);
    if (!coverage.ok()) return Error{coverage.message()};
    auto waiting = store_->unroutableOf(patient);
    if (!waiting.ok()) return Error{waiting.message()};
    for (const UnroutableWrite& claim : *waiting) {
      mappers::BillingFact billing;
      billing.claim_id = claim.claim_id;
      billing.code = claim.code;
      billing.date_of_service = claim.date_of_service;
      CoverageChoice choice = chooseCoverage(*coverage, claim.date_of_service);
      billing.coverage = std::move(choice.coverage);
      billing.coverage_reason = std::move(choice.reason);
      RouteDecision decision = routeClaim(config_, billing);
      if (decision.payer == nullptr) {
        if (decision.reason != claim.reason) {
          IssueList reason;
          reason.atExpression(Severity::kWarning, "business-rule", "Claim", decision.reason);
          Status updated = store_->updateUnroutableReason(claim.claim_id, decision.reason, toOperationOutcomeJson(reason));
          if (!updated.ok()) return updated;
        }
        continue;
      }
      auto commit = rerouteCommit(claim, *billing.coverage, *decision.payer, live);
      if (!commit.ok()) return Error{commit.message()};
      if (!commit->has_value()) continue;  // its stored Claim is gone or would not validate: it keeps waiting
      auto committed = store_->commitIngest(std::move(**commit));
      if (!committed.ok()) return Error{committed.message()};
    }
    if (!check_routed) continue;
    // A claim already handed to a payer stays with it; a roster or claim file that now says
    // otherwise is listed for people to settle (GET /admin/routing-conflicts).
    auto routed = store_->routedOf(patient);
    if (!routed.ok()) return Error{routed.message()};
    for (const RoutedClaim& claim : *routed) {
      CoverageChoice now = chooseCoverage(*coverage, claim.date_of_service);
      const std::string now_payer = now.coverage ? now.coverage->payer_id : std::string();
      if (now_payer == claim.payer_id) continue;
      const std::string reason = now.coverage ? "the coverage of payer '" + now_payer + "' is valid on " +
                                                    claim.date_of_service + " (Coverage/" + now.coverage->coverage_id + ")"
                                              : now.reason;
      Status listed = store_->putRoutingConflict(RoutingConflict{claim, now_payer, reason, ""});
      if (!listed.ok()) return listed;
    }
  }
  return Status::Ok();
}


std::optional<Answer> Pipeline::decodeEvent(std::string_view channel, std::string_view key_prefix, std::string_view body,
                                            std::string_view content_type, json::Document& event,
                                            std::string& idempotency_key) {
  json::ParseError parse_error;
  if (!json::parse(body, event, parse_error)) {
    IssueList issues;
    std::string where = "line " + std::to_string(parse_error.line) + ", column " + std::to_string(parse_error.column);
    std::string why = "the body is not well-formed JSON: " + parse_error.describe();
    if (auto bad = json::invalidUtf8Offset(body)) {  // issue 14: invalid UTF-8 names its byte offset
      where += ", byte offset " + std::to_string(*bad);
      why += " (not valid UTF-8 at byte offset " + std::to_string(*bad) + ")";
    }
    issues.add(Issue{Severity::kError, "structure", why, {}, {where}});
    return reject(channel, body, content_type, 400, issues);
  }
  // Idempotency: a re-posted event (same source + eventId) gets the first answer.
  if (auto source = json::getString(event, "source"), event_id = json::getString(event, "eventId"); source && event_id) {
    idempotency_key = std::string(key_prefix) + std::string(*source) + '\x1f' + std::string(*event_id);
    auto answer = store_->findAnswer(idempotency_key);
    if (!answer.ok()) return storeFailure(answer.message());
    if (answer->has_value()) {
      metrics_.countIngest(std::string(channel), "duplicate");
      return Answer{(*answer)->status, "application/fhir+json", (*answer)->answer};
    }
  }
  return std::nullopt;
}

Answer Pipeline::ingestEconsult(std::string_view body, std::string_view content_type) {
  static constexpr std::string_view kChannel = "econsult";
  if (isHl7v2ContentType(content_type)) return ingestEconsultV2(body, content_type);
  if (!isJsonContentType(content_type)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported",
                     "Content-Type '" + std::string(content_type) +
                         "' is not accepted here: send application/json, application/fhir+json or "
                         "x-application/hl7-v2+er7",
                     {}, {}});
    return reject(kChannel, body, content_type, 415, issues);
  }

  // Decode; a re-post gets the first answer (keys without a channel prefix, as stored since #2).
  json::Document event;
  std::string idempotency_key;
  if (auto done = decodeEvent(kChannel, "", body, content_type, event, idempotency_key)) return std::move(*done);

  // Map (mappers/specs/econsult.json) and validate
  mappers::engine::MappedBundle mapped;
  IssueList issues;
  if (int status = mapEvent("econsult", "econsult", event, body, mapped, issues); status != 0) {
    if (status == kStoreFailed) return storeFailureOf(issues);
    return reject(kChannel, body, content_type, status, issues);
  }

  // Routing on the merged coverage timeline; the Claims name the coverage it chose.
  auto read_facts = econsultFacts(mapped.bundle, *store_);
  if (!read_facts.ok()) return storeFailure(read_facts.message());
  EconsultFacts& facts = *read_facts;
  settleBilling(config_, mapped.bundle, facts.billing);
  // Answer: the stored Bundle, with warnings as a last OperationOutcome entry.
  IngestCommit commit = acceptedEvent(kChannel, idempotency_key, body, mapped.bundle, issues);
  if (idempotency_key.empty()) return storeFailure("event without source/eventId passed mapping");
  auto outcome = commitEvent(mapped.bundle, std::move(commit), facts.billing, facts.patient_id, std::move(facts.event),
                             eventSource(json::getString(event, "source").value_or(""), json::getString(event, "eventId").value_or(""),
                                         json::getString(event, "occurredAt").value_or("")));
  if (!outcome.ok()) return storeFailure(outcome.message());
  return Answer{outcome->status, "application/fhir+json", outcome->answer};
}

int Pipeline::mapEvent(std::string_view channel, const std::string& spec, const json::Value& record, std::string_view raw,
                       mappers::engine::MappedBundle& mapped, IssueList& issues) {
  if (!specs_ || !specs_->has(spec)) {
    issues.add(Issue{Severity::kError, "not-supported", "no mapping spec '" + spec + "' is loaded", {}, {}});
    return 422;
  }
  CpuGate::Slot cpu_slot(CpuGate::shared());  // mapping + validation: about one request per core
  GatewayDirectory directory(config_, *store_);
  mappers::engine::MapOptions options;
  options.directory = &directory;
  options.source_name = "POST /ingest/" + std::string(channel);
  options.base_url = base_url_;
  // The consult's ServiceRequest is updated by later events ("update": "merge" in the spec).
  options.stored_resource = [&directory](const std::string& type, const std::string& id) {
    return directory.storedResource(type, id);
  };
  auto done = specs_->mapRecord(spec, record, std::string(raw), "request", options, mapped, issues);
  // What the mapper read from the store failed: whatever it concluded ("no coverage") is not
  // about the data. The caller answers 503 and keeps nothing in quarantine.
  if (auto failure = directory.failure()) {
    issues = IssueList();
    issues.add(Issue{Severity::kFatal, "transient", "the store failed: " + *failure, {}, {}});
    return kStoreFailed;
  }
  if (!done.ok() || !*done) {
    if (!done.ok()) issues.add(Issue{Severity::kError, "exception", done.message(), {}, {}});
    return 422;
  }
  issues.append(mapped.warnings);
  if (validator_) {
    auto started = std::chrono::steady_clock::now();
    IssueList validation;
    validator_->validate(mapped.bundle, ValidationRequest{}, validation);
    metrics_.observeValidation(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (validation.hasErrors()) {
      issues = std::move(validation);
      return 422;
    }
    // Warnings of the validator travel with the mapper's own.
    for (const Issue& issue : validation.issues()) {
      if (issue.severity == Severity::kWarning) issues.add(issue);
    }
  }
  return 0;
}

Result<CommitOutcome> Pipeline::commitEvent(const json::Value& bundle, IngestCommit commit,
                                            const std::vector<mappers::BillingFact>& billing, const std::string& patient_id,
                                            EventFacts facts, const ContributionSource& source) {
  const std::string channel = commit.channel;
  const std::string bundle_json = json::serialize(bundle);
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    commit.resources.push_back(ResourceWrite{std::string(*json::getString(resource, "resourceType")),
                                             std::string(*json::getString(resource, "id")),
                                             json::serialize(resource)});
  }
  // Patient and Coverage are the source's contributions, merged in the store (issue 11).
  takeContributions(*merge_rules_, bundle, source, commit);
  commit.coverage.clear();

  // Dispatch: every feed gets the accepted Bundle; each Claim goes to its payer or waits.
  for (const FeedConfig& feed : config_.feeds) {
    commit.outbox.push_back(OutboxWrite{feedDestination(feed.id), "bundle", bundle_json});
  }
  std::map<std::string, EventFacts> claim_facts;
  Status dispatched = dispatchBilling(config_, *store_, base_url_, bundle, billing, patient_id, facts, commit, claim_facts);
  if (!dispatched.ok()) return Error{dispatched.message()};
  bool has_subscriptions = false;
  if (topics_ && registry_ != nullptr) {
    std::vector<Subscription> live = registry_->all();
    has_subscriptions = !live.empty();
    if (has_subscriptions) {
      commit.change_context = encodeChangeContext(ChangeContext{std::move(facts), std::move(claim_facts), true});
    }
  }

  const bool has_outbox = !commit.outbox.empty() || has_subscriptions;
  const bool waits = !commit.unroutable.empty();
  auto outcome = store_->commitIngest(std::move(commit));
  if (!outcome.ok()) return outcome.error();
  if (!outcome->slot_taken.empty()) return outcome;  // refused, nothing written: the caller answers
  metrics_.countIngest(channel, outcome->duplicate ? "duplicate" : "accepted");
  // The event may have joined its patient to one a payer knows (in the commit's merge): its
  // waiting claims are routed on the merged timeline now.
  // The event is durable and answered as committed even when this fails: the claims keep
  // waiting (GET /admin/unroutable) and are routed again when the patient's coverage next changes.
  if (waits && !outcome->duplicate && !patient_id.empty()) {
    Status routed = routeWaitingClaims({patient_id}, false);
    if (!routed.ok()) {
      metrics_.countIngest(channel, "reroute_failed");
      std::fprintf(stderr, "ingest: routing the waiting claims of Patient/%s failed (they keep waiting): %s\n",
                   patient_id.c_str(), routed.message().c_str());
    }
  }
  if (has_outbox && !outcome->duplicate && on_outbox_) on_outbox_();
  return outcome;
}

Answer Pipeline::econsultRefusal(Answer refused, std::string_view content_type) {
  if (!isHl7v2ContentType(content_type)) return refused;
  IssueList issues;
  json::Document outcome;
  json::ParseError ignored;
  if (json::parse(refused.body, outcome, ignored)) {
    if (const json::Value* list = json::find(outcome, "issue"); list && list->IsArray()) {
      for (const json::Value& issue : list->GetArray()) {
        issues.add(Issue{Severity::kError, std::string(json::getString(issue, "code").value_or("exception")),
                         std::string(json::getString(issue, "diagnostics").value_or("")), {}, {}});
      }
    }
  }
  if (issues.empty()) issues.add(Issue{Severity::kError, "exception", "the body was refused", {}, {}});
  return Answer{refused.status, "x-application/hl7-v2+er7", mappers::readers::hl7v2::buildAck(nullptr, issues, hl7Now(), "ACK")};
}

Answer Pipeline::ingestEconsultV2(std::string_view body, std::string_view content_type) {
  static constexpr std::string_view kChannel = "econsult";
  static constexpr const char* kEr7 = "x-application/hl7-v2+er7";
  const std::string now = hl7Now();
  auto ack = [&](int status, const json::Value* message, const IssueList& issues) {
    std::string control = "ACK";
    if (message) {
      if (const json::Value* msh = json::find(*message, "MSH"); msh && msh->IsArray() && !msh->Empty()) {
        if (auto id = json::getString((*msh)[0], "10")) control += "-" + std::string(*id);
      }
    }
    return Answer{status, kEr7, mappers::readers::hl7v2::buildAck(message, issues, now, control)};
  };
  auto quarantined = [&](int status, const json::Value* message, IssueList issues) {
    Answer kept = reject(kChannel, body, content_type, status, issues);
    if (kept.status == 503) return econsultRefusal(std::move(kept), content_type);
    return ack(status, message, issues);
  };
  // A v2 sender reads ER7 only: a store failure is an ACK too (AR, status 503), never JSON.
  auto failed = [&](const std::string& message) { return econsultRefusal(storeFailure(message), content_type); };

  // Invalid UTF-8 is refused before anything reads the message (it would reach the store and
  // break every JSON document it is copied into).
  if (auto offset = json::invalidUtf8Offset(body)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "structure",
                     "the message is not valid UTF-8: byte offset " + std::to_string(*offset), {}, {}});
    return quarantined(400, nullptr, std::move(issues));
  }

  // Decode: one message.
  const std::string text(body);
  std::istringstream input(text);
  mappers::readers::hl7v2::Hl7v2Reader reader(input);
  mappers::readers::SourceRecord record;
  IssueList read_issues;
  mappers::readers::ReadStatus read = reader.next(record, read_issues);
  if (read != mappers::readers::ReadStatus::kRecord) {
    if (read_issues.empty()) read_issues.add(Issue{Severity::kError, "structure", "the body holds no HL7 v2 message", {}, {}});
    return quarantined(400, nullptr, std::move(read_issues));
  }
  mappers::readers::SourceRecord extra;
  IssueList extra_issues;
  if (reader.next(extra, extra_issues) != mappers::readers::ReadStatus::kEnd) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "structure", "the body holds more than one message: post one message per request", {}, {}});
    return quarantined(422, &record.doc, std::move(issues));
  }

  // Idempotency: MSH-3 (source) + MSH-10 (eventId), kept apart from JSON events.
  std::string idempotency_key;
  const json::Value& msh = record.doc["MSH"][0];
  if (auto source = json::getString(msh, "3"), event_id = json::getString(msh, "10"); source && event_id) {
    idempotency_key = "hl7v2\x1f" + std::string(*source) + '\x1f' + std::string(*event_id);
    auto answer = store_->findAnswer(idempotency_key);
    if (!answer.ok()) return failed(answer.message());
    if (answer->has_value()) {
      metrics_.countIngest(std::string(kChannel), "duplicate");
      return Answer{(*answer)->status, kEr7, (*answer)->answer};
    }
  }

  mappers::engine::MappedBundle mapped;
  IssueList issues;
  if (int status = mapEvent("econsult", "econsult-v2", record.doc, record.raw, mapped, issues); status != 0) {
    if (status == kStoreFailed) return econsultRefusal(storeFailureOf(issues), content_type);
    return quarantined(status, &record.doc, std::move(issues));
  }
  if (idempotency_key.empty()) {
    // Mapping takes the first component of a composite MSH-3/MSH-10; the message's identity
    // needs the whole field as one value. Kept, and answered AE (issue 14: this was a JSON 503
    // and nothing was kept, so the sender retried forever).
    IssueList identity;
    identity.add(Issue{Severity::kError, "value",
                       "MSH-3 (sending application) and MSH-10 (message control id) must each be one value, without "
                       "component separators: the message cannot be identified",
                       {}, {"MSH-3"}});
    return quarantined(422, &record.doc, std::move(identity));
  }
  auto read_facts = econsultFacts(mapped.bundle, *store_);
  if (!read_facts.ok()) return failed(read_facts.message());
  EconsultFacts& facts = *read_facts;
  settleBilling(config_, mapped.bundle, facts.billing);
  IngestCommit commit;
  commit.channel = std::string(kChannel);
  commit.idempotency_key = idempotency_key;
  commit.payload = text;
  commit.status = 200;
  commit.answer = ack(200, &record.doc, IssueList()).body;
  auto outcome = commitEvent(mapped.bundle, std::move(commit), facts.billing, facts.patient_id, std::move(facts.event),
                             eventSource(json::getString(msh, "3").value_or(""), json::getString(msh, "10").value_or(""),
                                         json::getString(msh, "7").value_or("")));
  if (!outcome.ok()) return failed(outcome.message());
  return Answer{outcome->status, kEr7, outcome->answer};
}

}  // namespace fhir::gateway

namespace fhir::gateway {

Answer Pipeline::ingestCareManagement(std::string_view body, std::string_view content_type) {
  static constexpr std::string_view kChannel = "care-management";
  if (!isJsonContentType(content_type)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported",
                     "Content-Type '" + std::string(content_type) +
                         "' is not accepted here: send application/json or application/fhir+json",
                     {}, {}});
    return reject(kChannel, body, content_type, 415, issues);
  }
  json::Document event;
  std::string idempotency_key;
  const std::string key_prefix = std::string(kChannel) + '\x1f';
  if (auto done = decodeEvent(kChannel, key_prefix, body, content_type, event, idempotency_key)) return std::move(*done);

  // Map (mappers/specs/care-management.json) and validate
  mappers::engine::MappedBundle mapped;
  IssueList issues;
  if (int status = mapEvent(kChannel, std::string(kChannel), event, body, mapped, issues); status != 0) {
    if (status == kStoreFailed) return storeFailureOf(issues);
    return reject(kChannel, body, content_type, status, issues);
  }
  if (idempotency_key.empty()) return storeFailure("event without source/eventId passed mapping");
  auto second = secondAcm(*store_, mapped.bundle, event);
  if (!second.ok()) return storeFailure(second.message());
  if (*second) return reject(kChannel, body, content_type, 422, **second);

  std::string patient_id;
  for (const json::Value& entry : mapped.bundle["entry"].GetArray()) {
    if (json::getString(entry["resource"], "resourceType") == "Patient") {
      patient_id = std::string(json::getString(entry["resource"], "id").value_or(""));
    }
  }
  const std::vector<mappers::CoverageFact> declared = eventCoverage(mapped.bundle);

  // Billing Claims go to the payer covering their date (commitEvent: feeds, payers, subscriptions).
  auto stored_coverage = store_->coverageOf(patient_id);
  if (!stored_coverage.ok()) return storeFailure(stored_coverage.message());
  std::vector<mappers::CoverageFact> known = withEventCoverage(std::move(*stored_coverage), declared);
  std::vector<mappers::BillingFact> billing = billingFacts(mapped.bundle, known);
  settleBilling(config_, mapped.bundle, billing);
  IngestCommit commit = acceptedEvent(kChannel, idempotency_key, body, mapped.bundle, issues);
  commit.unique_slots = acmSlots(mapped.bundle);
  EventFacts facts = careManagementFacts(mapped.bundle, event, declared);
  auto outcome = commitEvent(mapped.bundle, std::move(commit), billing, patient_id, std::move(facts),
                             eventSource(json::getString(event, "source").value_or(""), json::getString(event, "eventId").value_or(""),
                                         json::getString(event, "occurredAt").value_or("")));
  if (!outcome.ok()) return storeFailure(outcome.message());
  if (!outcome->slot_taken.empty()) {  // another event took this ACM slot since secondAcm read it
    auto taken = secondAcm(*store_, mapped.bundle, event);
    if (!taken.ok()) return storeFailure(taken.message());
    if (*taken) return reject(kChannel, body, content_type, 422, **taken);
    return storeFailure("ACM slot " + outcome->slot_taken + " is held by " + outcome->slot_owner + " whose Claim cannot be read");
  }
  return Answer{outcome->status, "application/fhir+json", outcome->answer};
}

}  // namespace fhir::gateway
