// SPDX-License-Identifier: Apache-2.0
#include "gateway/scorecard/quality.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>

#include "conformance/common/time_util.h"
#include "conformance/json/json.h"
#include "gateway/measure/measure.h"
#include "gateway_paths.h"

namespace fhir::gateway::scorecard {
namespace {

constexpr std::string_view kMappingProvenance = "https://fhir.alignment-gateway.org/StructureDefinition/mapping-provenance";

std::string str(const json::Value* value) {
  return value != nullptr && json::isString(*value) ? std::string(json::stringView(*value)) : std::string();
}

// "econsult:POST /ingest/econsult:request" → ("econsult", ""); "lakeshore-medicaid:POST
// /ingest/roster/lakeshore-medicaid:line 2" → ("roster", "lakeshore-medicaid").
std::pair<std::string, std::string> channelOfRecord(std::string_view record) {
  static constexpr std::string_view kIngest = "/ingest/";
  const size_t at = record.find(kIngest);
  if (at == std::string_view::npos) return {};
  std::string_view rest = record.substr(at + kIngest.size());
  rest = rest.substr(0, rest.find(':'));
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return {std::string(rest), ""};
  return {std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
}

// Counts per row, with the failure tallies before they are ranked.
struct Tally {
  QualityRow row;
  std::map<std::tuple<std::string, std::string, std::string>, int64_t> failures;
};

Tally& tallyOf(std::map<std::string, Tally>& rows, const std::string& key, const std::string& title, const std::string& kind) {
  Tally& tally = rows[key];
  if (tally.row.key.empty()) {
    tally.row.key = key;
    tally.row.title = title;
    tally.row.kind = kind;
  }
  return tally;
}

QualityRow ranked(Tally tally) {
  std::vector<FailureCount> failures;
  for (const auto& [what, count] : tally.failures) {
    failures.push_back(FailureCount{std::get<0>(what), std::get<1>(what), std::get<2>(what), count});
  }
  std::stable_sort(failures.begin(), failures.end(), [](const FailureCount& a, const FailureCount& b) { return a.count > b.count; });
  if (failures.size() > kTopFailures) failures.resize(kTopFailures);
  tally.row.failures = std::move(failures);
  return std::move(tally.row);
}

int64_t percentile(std::vector<int64_t> values, double fraction) {
  if (values.empty()) return -1;
  std::sort(values.begin(), values.end());
  // Nearest rank, as the measures' p90 (docs/SCORECARD.md): the ⌈fraction·n⌉-th smallest.
  size_t rank = static_cast<size_t>(fraction * static_cast<double>(values.size()) + 0.999999);
  rank = std::clamp<size_t>(rank, 1, values.size());
  return values[rank - 1];
}

std::string word(std::string_view text, size_t at) {
  size_t end = at;
  while (end < text.size() && (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '-' || text[end] == '.' || text[end] == '_')) ++end;
  return std::string(text.substr(at, end - at));
}

}  // namespace

Result<DesignElements> DesignElements::parse(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc.ok()) return Error{"design elements: " + doc.message()};
  const json::Value* list = json::find(*doc, "elements");
  if (list == nullptr || !list->IsArray()) return Error{"design elements: 'elements' must be an array"};
  DesignElements out;
  for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
    const json::Value& item = (*list)[i];
    const std::string where = "design elements: elements[" + std::to_string(i) + "]";
    DesignElement element;
    element.id = str(json::find(item, "id"));
    element.title = str(json::find(item, "title"));
    if (element.id.empty()) return Error{where + ".id is required"};
    if (element.title.empty()) element.title = element.id;
    const json::Value* rules = json::find(item, "rules");
    if (rules == nullptr || !rules->IsArray() || rules->Empty()) return Error{where + ".rules must be a non-empty array"};
    for (rapidjson::SizeType r = 0; r < rules->Size(); ++r) {
      const json::Value& rule = (*rules)[r];
      for (auto member = rule.MemberBegin(); member != rule.MemberEnd(); ++member) {
        const std::string name = member->name.GetString();
        if (name != "channel" && name != "eventType" && name != "targetType") {
          return Error{where + ".rules[" + std::to_string(r) + "]: unknown member '" + name + "'"};
        }
      }
      DesignElementRule parsed{str(json::find(rule, "channel")), str(json::find(rule, "eventType")), str(json::find(rule, "targetType"))};
      if (parsed.channel.empty()) return Error{where + ".rules[" + std::to_string(r) + "].channel is required"};
      element.rules.push_back(std::move(parsed));
    }
    out.elements_.push_back(std::move(element));
  }
  return out;
}

Result<std::shared_ptr<const DesignElements>> DesignElements::bundled() {
  static std::once_flag once;
  static Result<std::shared_ptr<const DesignElements>> loaded = Error{"not loaded"};
  std::call_once(once, [] {
    const char* profiles = std::getenv("FHIR_GATEWAY_PROFILES");
    const std::string path = std::string(profiles != nullptr && *profiles != '\0' ? profiles : GATEWAY_PROFILES_DIR) +
                             "/alignment/design-elements.json";
    std::ifstream in(path);
    if (!in) {
      loaded = Error{"cannot read " + path};
      return;
    }
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = parse(text.str());
    if (!parsed.ok()) {
      loaded = Error{path + ": " + parsed.message()};
      return;
    }
    loaded = std::shared_ptr<const DesignElements>(std::make_shared<DesignElements>(std::move(*parsed)));
  });
  return loaded;
}

const DesignElement* DesignElements::classify(std::string_view channel, std::string_view event_type,
                                              const std::vector<std::string>& target_types) const {
  for (const DesignElement& element : elements_) {
    for (const DesignElementRule& rule : element.rules) {
      if (rule.channel != channel) continue;
      // A record with neither an event type nor targets cannot be told apart: only a rule that
      // asks for neither takes it.
      if (event_type.empty() && target_types.empty() && (!rule.event_type.empty() || !rule.target_type.empty())) continue;
      if (!rule.event_type.empty() && !event_type.empty() && rule.event_type != event_type) continue;
      if (!rule.target_type.empty() && !target_types.empty() &&
          std::find(target_types.begin(), target_types.end(), rule.target_type) == target_types.end()) {
        continue;
      }
      return &element;
    }
  }
  return nullptr;
}

FailureCount failureOf(std::string_view diagnostics, std::string_view code, std::string_view location) {
  FailureCount failure;
  // The element: indexes and line/segment numbers left out, so that one rule broken on many
  // records is one row ("line 12, column dos_from" → "column dos_from").
  std::string element;
  std::string_view rest = location;
  if (rest.rfind("line ", 0) == 0 && rest.find(", ") != std::string_view::npos) rest = rest.substr(rest.find(", ") + 2);
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '[') {
      const size_t close = rest.find(']', i);
      if (close != std::string_view::npos &&
          rest.substr(i + 1, close - i - 1).find_first_not_of("0123456789") == std::string_view::npos) {
        element += "[]";
        i = close;
        continue;
      }
    }
    if (rest.substr(i).rfind("segment ", 0) == 0) {
      element += "segment ";
      i += 8;
      while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) ++i;
      while (i < rest.size() && rest[i] == ' ') ++i;
      --i;
      continue;
    }
    element += rest[i];
  }
  failure.element = element;
  failure.rule = std::string(code);
  for (std::string_view marker : {"Constraint failed: ", "ValueSet ", "ConceptMap "}) {
    const size_t at = diagnostics.find(marker);
    if (at == std::string_view::npos) continue;
    const std::string named = word(diagnostics, at + marker.size());
    if (named.empty()) continue;
    failure.rule += marker == std::string_view("Constraint failed: ") ? " " + named : " " + std::string(marker) + named;
    break;
  }
  static constexpr std::string_view kDefinition = "StructureDefinition/";
  if (const size_t at = diagnostics.find(kDefinition); at != std::string_view::npos) {
    failure.profile = word(diagnostics, at + kDefinition.size());
  }
  return failure;
}

Result<QualityReport> computeRecordQuality(Store& store, const std::string& base_url, const DesignElements& elements,
                                           const std::atomic<bool>* stopping) {
  auto stopped = [stopping] { return stopping != nullptr && stopping->load(std::memory_order_relaxed); };
  const Error kStopping{"the gateway is stopping"};
  std::map<std::string, Tally> sources;
  std::map<std::string, Tally> by_element;
  for (const DesignElement& element : elements.elements()) tallyOf(by_element, element.id, element.title, "element");
  auto elementTally = [&](std::string_view channel, std::string_view event_type, const std::vector<std::string>& targets) -> Tally& {
    const DesignElement* element = elements.classify(channel, event_type, targets);
    if (element == nullptr) return tallyOf(by_element, "unclassified", "Not in any design element", "element");
    return by_element[element->id];
  };

  // Accepted: one mapping Provenance per accepted record, read a page at a time.
  size_t visited = 0;
  Status scanned = measure::forEachStored(store, base_url, "Provenance", {}, [&](std::string&& text) -> Status {
    if (++visited % 1000 == 0 && stopped()) return kStopping;
    auto doc = json::parse(text);
    if (!doc.ok()) return Status::Ok();
    const json::Value* profiles = json::find(*doc, "meta") ? json::find(*json::find(*doc, "meta"), "profile") : nullptr;
    bool mapped = false;
    if (profiles != nullptr && profiles->IsArray()) {
      for (const auto& profile : profiles->GetArray()) mapped = mapped || (json::isString(profile) && json::stringView(profile) == kMappingProvenance);
    }
    if (!mapped) return Status::Ok();  // a merge Provenance: no record of its own
    std::string record;
    if (const json::Value* entity = json::find(*doc, "entity"); entity != nullptr && entity->IsArray() && !entity->Empty()) {
      const json::Value* what = json::find((*entity)[0], "what");
      const json::Value* identifier = what != nullptr ? json::find(*what, "identifier") : nullptr;
      if (identifier != nullptr) record = str(json::find(*identifier, "value"));
    }
    auto [channel, payer] = channelOfRecord(record);
    std::vector<std::string> targets;
    if (const json::Value* list = json::find(*doc, "target"); list != nullptr && list->IsArray()) {
      for (const auto& target : list->GetArray()) {
        const std::string reference = str(json::find(target, "reference"));
        const std::string type = reference.substr(0, reference.find('/'));
        if (!type.empty() && std::find(targets.begin(), targets.end(), type) == targets.end()) targets.push_back(type);
      }
    }
    std::string source = payer;
    std::string kind = "payer";
    if (payer.empty()) {
      kind = "ehr";
      if (const json::Value* agents = json::find(*doc, "agent"); agents != nullptr && agents->IsArray() && !agents->Empty()) {
        if (const json::Value* who = json::find((*agents)[0], "who")) {
          const json::Value* identifier = json::find(*who, "identifier");
          source = identifier != nullptr ? str(json::find(*identifier, "value")) : str(json::find(*who, "display"));
        }
      }
      if (source.empty()) {
        // The event that wrote it: its idempotency key ends with source, '\x1f', eventId
        // (gateway/ingest/channel.cc; care-management and HL7 v2 keys have a prefix before).
        auto origins = store.originsOf("Provenance", str(json::find(*doc, "id")), false);
        if (!origins.ok()) return origins.error();
        for (const auto& event : origins->events) {
          if (event.channel != "econsult" && event.channel != "care-management") continue;
          const std::string& key = event.idempotency_key;
          const size_t last = key.rfind('\x1f');
          if (last == std::string::npos || last == 0) continue;
          const size_t before = key.rfind('\x1f', last - 1);
          source = before == std::string::npos ? key.substr(0, last) : key.substr(before + 1, last - before - 1);
          break;
        }
      }
      if (source.empty()) source = "(unknown source)";
    }
    tallyOf(sources, source, source, kind).row.accepted++;
    elementTally(channel, "", targets).row.accepted++;
    return Status::Ok();
  });
  if (!scanned.ok()) return Error{scanned.message()};

  // Quarantined: entries no replay has been accepted for.
  QuarantineQuery query;
  query.count = 1000;
  query.status = "quarantined";
  while (true) {
    if (stopped()) return kStopping;
    auto page = store.listQuarantinePage(query);
    if (!page.ok()) return page.error();
    for (const QuarantineEntry& entry : page->entries) {
      std::string channel = entry.channel;
      std::string source;
      std::string kind = "payer";
      std::string event_type;
      if (const size_t colon = channel.find(':'); colon != std::string::npos) {
        source = channel.substr(colon + 1);
        channel = channel.substr(0, colon);
      } else {
        kind = "ehr";
        auto full = store.readQuarantine(entry.id);
        if (!full.ok()) return full.error();
        if (full->has_value()) {
          json::Document payload;
          json::ParseError error;
          if (json::parse((*full)->payload, payload, error) && payload.IsObject()) {
            source = str(json::find(payload, "source"));
            event_type = str(json::find(payload, "eventType"));
          }
        }
        if (source.empty()) source = "(unreadable payload)";
      }
      Tally& source_tally = tallyOf(sources, source, source, kind);
      Tally& element_tally = elementTally(channel, event_type, {});
      source_tally.row.quarantined++;
      element_tally.row.quarantined++;
      auto outcome = json::parse(entry.outcome_json);
      const json::Value* issues = outcome.ok() ? json::find(*outcome, "issue") : nullptr;
      if (issues == nullptr || !issues->IsArray()) continue;
      for (const auto& issue : issues->GetArray()) {
        const std::string severity = str(json::find(issue, "severity"));
        if (severity != "error" && severity != "fatal") continue;
        std::string location;
        for (const char* member : {"location", "expression"}) {
          const json::Value* list = json::find(issue, member);
          if (location.empty() && list != nullptr && list->IsArray() && !list->Empty()) location = str(&(*list)[0]);
        }
        FailureCount failure = failureOf(str(json::find(issue, "diagnostics")), str(json::find(issue, "code")), location);
        auto key = std::make_tuple(failure.profile, failure.element, failure.rule);
        source_tally.failures[key]++;
        element_tally.failures[key]++;
      }
    }
    if (page->next_cursor.empty()) break;
    query.cursor = page->next_cursor;
  }

  QualityReport report;
  report.generated_at = nowIso();
  for (const char* kind : {"payer", "ehr"}) {
    for (auto& [key, tally] : sources) {
      if (tally.row.kind == kind) report.sources.push_back(ranked(tally));
    }
  }
  for (const DesignElement& element : elements.elements()) report.elements.push_back(ranked(by_element[element.id]));
  if (auto unclassified = by_element.find("unclassified"); unclassified != by_element.end()) {
    report.elements.push_back(ranked(unclassified->second));
  }

  constexpr size_t kAll = 1000000;
  auto unroutable = store.listUnroutable(kAll);
  if (!unroutable.ok()) return unroutable.error();
  report.unroutable = static_cast<int64_t>(unroutable->size());
  auto conflicts = store.listConflicts(kAll);
  if (!conflicts.ok()) return conflicts.error();
  report.conflicts = static_cast<int64_t>(conflicts->size());
  auto routing = store.listRoutingConflicts(kAll);
  if (!routing.ok()) return routing.error();
  report.routing_conflicts = static_cast<int64_t>(routing->size());
  return report;
}

// Feed lag: commit to the receiver's first 2xx, over each destination's latest rows.
Result<std::vector<FeedLag>> computeFeedLags(Store& store) {
  std::vector<FeedLag> feeds;
  auto depths = store.outboxDepth();
  if (!depths.ok()) return depths.error();
  for (const DestinationDepth& depth : *depths) {
    FeedLag lag;
    lag.destination = depth.destination;
    lag.pending = depth.pending;
    lag.dead = depth.dead;
    auto last = store.lastNumber(depth.destination);
    if (!last.ok()) return last.error();
    std::vector<int64_t> lags;
    if (*last > 0) {
      auto rows = store.outboxRange(depth.destination, std::max<int64_t>(1, *last - kLagRows + 1), *last);
      if (!rows.ok()) return rows.error();
      for (const OutboxItem& row : *rows) {
        ++lag.rows;
        auto attempts = store.attemptsOf(row.id);
        if (!attempts.ok()) return attempts.error();
        for (const DeliveryAttempt& attempt : *attempts) {
          if (attempt.http_status < 200 || attempt.http_status > 299) continue;
          ++lag.delivered;
          lags.push_back(std::max<int64_t>(0, attempt.at_ms + attempt.duration_ms - row.created_ms));
          break;
        }
      }
    }
    lag.p50_ms = percentile(lags, 0.5);
    lag.p99_ms = percentile(lags, 0.99);
    feeds.push_back(std::move(lag));
  }
  std::sort(feeds.begin(), feeds.end(), [](const FeedLag& a, const FeedLag& b) { return a.destination < b.destination; });
  return feeds;
}

Result<QualityReport> computeQuality(Store& store, const std::string& base_url, const DesignElements& elements) {
  auto report = computeRecordQuality(store, base_url, elements);
  if (!report.ok()) return report;
  auto feeds = computeFeedLags(store);
  if (!feeds.ok()) return feeds.error();
  report->feeds = std::move(*feeds);
  return report;
}

namespace {

json::Value number(int64_t value, json::Allocator& allocator) { return json::makeNumber(std::to_string(value), allocator); }

json::Value rowJson(const QualityRow& row, json::Allocator& a) {
  json::Value object(rapidjson::kObjectType);
  json::addString(object, "key", row.key, a);
  json::addString(object, "title", row.title, a);
  json::addString(object, "kind", row.kind, a);
  json::addMember(object, "received", number(row.received(), a), a);
  json::addMember(object, "accepted", number(row.accepted, a), a);
  json::addMember(object, "quarantined", number(row.quarantined, a), a);
  char share[32];
  std::snprintf(share, sizeof share, "%.4f", row.received() > 0 ? static_cast<double>(row.quarantined) / static_cast<double>(row.received()) : 0.0);
  json::addMember(object, "quarantinedShare", json::makeNumber(share, a), a);
  json::Value failures(rapidjson::kArrayType);
  for (const FailureCount& failure : row.failures) {
    json::Value item(rapidjson::kObjectType);
    json::addString(item, "profile", failure.profile, a);
    json::addString(item, "element", failure.element, a);
    json::addString(item, "rule", failure.rule, a);
    json::addMember(item, "count", number(failure.count, a), a);
    failures.PushBack(item, a);
  }
  json::addMember(object, "failures", std::move(failures), a);
  return object;
}

}  // namespace

std::string qualityJson(const QualityReport& report) {
  json::Document doc;
  doc.SetObject();
  auto& a = doc.GetAllocator();
  json::addString(doc, "generatedAt", report.generated_at, a);
  for (const auto& [name, rows] : {std::pair{"sources", &report.sources}, std::pair{"elements", &report.elements}}) {
    json::Value list(rapidjson::kArrayType);
    for (const QualityRow& row : *rows) list.PushBack(rowJson(row, a), a);
    json::addMember(doc, name, std::move(list), a);
  }
  json::Value feeds(rapidjson::kArrayType);
  for (const FeedLag& lag : report.feeds) {
    json::Value item(rapidjson::kObjectType);
    json::addString(item, "destination", lag.destination, a);
    json::addMember(item, "rows", number(lag.rows, a), a);
    json::addMember(item, "delivered", number(lag.delivered, a), a);
    json::addMember(item, "pending", number(lag.pending, a), a);
    json::addMember(item, "dead", number(lag.dead, a), a);
    if (lag.p50_ms >= 0) json::addMember(item, "lagP50Ms", number(lag.p50_ms, a), a);
    if (lag.p99_ms >= 0) json::addMember(item, "lagP99Ms", number(lag.p99_ms, a), a);
    feeds.PushBack(item, a);
  }
  json::addMember(doc, "feeds", std::move(feeds), a);
  json::addMember(doc, "unroutable", number(report.unroutable, a), a);
  json::addMember(doc, "conflicts", number(report.conflicts, a), a);
  json::addMember(doc, "routingConflicts", number(report.routing_conflicts, a), a);
  return json::serialize(doc);
}

}  // namespace fhir::gateway::scorecard
