// SPDX-License-Identifier: Apache-2.0
#include "gateway/merge/merge.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include "gateway_paths.h"

namespace fhir::gateway::merge {
namespace {

Result<std::vector<std::string>> stringList(const json::Value& value, const std::string& where) {
  if (!value.IsArray()) return Error{where + " must be an array of strings"};
  std::vector<std::string> out;
  for (const json::Value& item : value.GetArray()) {
    if (!json::isString(item)) return Error{where + " must be an array of strings"};
    out.emplace_back(json::stringView(item));
  }
  return out;
}

Result<ElementRule> elementRule(const json::Value& value, const std::string& where) {
  if (!value.IsObject()) return Error{where + " must be an object"};
  ElementRule rule;
  for (const auto& member : value.GetObject()) {
    const std::string_view name = json::stringView(member.name);
    if (name == "take") {
      if (!json::isString(member.value)) return Error{where + ".take must be a string"};
      rule.take = std::string(json::stringView(member.value));
      if (rule.take != "first" && rule.take != "union" && rule.take != "members") {
        return Error{where + ".take must be \"first\", \"union\" or \"members\", not \"" + rule.take + "\""};
      }
    } else if (name == "from") {
      auto from = stringList(member.value, where + ".from");
      if (!from.ok()) return from.error();
      rule.from = std::move(*from);
    } else if (name == "patient") {
      if (!member.value.IsBool()) return Error{where + ".patient must be a boolean"};
      rule.patient = member.value.GetBool();
    } else if (name != "$comment") {
      return Error{where + ": unknown member '" + std::string(name) + "'"};
    }
  }
  if (rule.take.empty()) return Error{where + ".take is required"};
  return rule;
}

// Position of `kind` in a precedence list; lists.size() when absent (an empty list allows all).
size_t rankOfKind(const std::vector<std::string>& from, std::string_view kind) {
  if (from.empty()) return 0;
  auto found = std::find(from.begin(), from.end(), kind);
  return found == from.end() ? from.size() : static_cast<size_t>(found - from.begin());
}

bool allowed(const ElementRule& rule, std::string_view kind) { return rankOfKind(rule.from, kind) < std::max<size_t>(rule.from.size(), 1); }

// True when `a` takes precedence over `b` for a rule: earlier kind, later rank, lower tiebreak.
bool before(const ElementRule& rule, const Contribution& a, const Contribution& b) {
  const size_t ka = rankOfKind(rule.from, a.kind), kb = rankOfKind(rule.from, b.kind);
  if (ka != kb) return ka < kb;
  if (a.rank != b.rank) return a.rank > b.rank;
  if (a.tiebreak != b.tiebreak) return a.tiebreak < b.tiebreak;
  return a.contributor < b.contributor;
}

void pointAtSurvivors(json::Value& value, const Survivors& survivors, json::Allocator& allocator) {
  if (value.IsArray()) {
    for (json::Value& item : value.GetArray()) pointAtSurvivors(item, survivors, allocator);
    return;
  }
  if (!value.IsObject()) return;
  for (auto& member : value.GetObject()) {
    if (json::stringView(member.name) == "reference" && json::isString(member.value)) {
      const std::string_view reference = json::stringView(member.value);
      if (reference.rfind("Patient/", 0) != 0) continue;
      auto found = survivors.find(reference.substr(8));
      if (found != survivors.end()) member.value = json::makeString("Patient/" + found->second, allocator);
    } else {
      pointAtSurvivors(member.value, survivors, allocator);
    }
  }
}

std::string referenceOf(const json::Value& object, std::string_view key) {
  const json::Value* ref = json::find(object, key);
  return ref ? std::string(json::getString(*ref, "reference").value_or("")) : std::string();
}

struct Parsed {
  const Contribution* contribution;
  json::Document doc;
};

// Group.member: one entry per (surviving) entity, from the latest contribution naming it; a
// `roster-full` marker ends, on its asOf date, the members it does not list whose latest entry
// is older than it.
void mergeMembers(const ElementRule& rule, const std::vector<Parsed>& parsed, const Survivors& survivors, json::Value& out,
                  json::Allocator& allocator, std::set<std::string>& provenance) {
  struct Chosen {
    const Contribution* contribution;
    const json::Value* member;
  };
  std::map<std::string, Chosen> chosen;
  auto canonical = [&](const std::string& reference) {
    if (reference.rfind("Patient/", 0) != 0) return reference;
    auto found = survivors.find(std::string_view(reference).substr(8));
    return found == survivors.end() ? reference : "Patient/" + found->second;
  };
  for (const Parsed& item : parsed) {
    if (item.contribution->kind == "roster-full" || !allowed(rule, item.contribution->kind)) continue;
    const json::Value* members = json::find(item.doc, "member");
    if (!members || !members->IsArray()) continue;
    for (const json::Value& member : members->GetArray()) {
      const std::string key = canonical(referenceOf(member, "entity"));
      auto [at, fresh] = chosen.emplace(key, Chosen{item.contribution, &member});
      if (!fresh && before(rule, *item.contribution, *at->second.contribution)) at->second = Chosen{item.contribution, &member};
    }
  }
  json::Value list(rapidjson::kArrayType);
  for (const auto& [key, pick] : chosen) {
    json::Value member;
    member.CopyFrom(*pick.member, allocator);
    pointAtSurvivors(member, survivors, allocator);
    provenance.insert(pick.contribution->provenance);
    for (const Parsed& item : parsed) {
      if (item.contribution->kind != "roster-full" || pick.contribution->rank >= item.contribution->rank) continue;
      const std::string& as_of = item.contribution->rank;
      const json::Value* listed = json::find(item.doc, "listed");
      bool named = false;
      for (rapidjson::SizeType i = 0; listed && listed->IsArray() && i < listed->Size(); ++i) {
        if (json::isString((*listed)[i]) && canonical(std::string(json::stringView((*listed)[i]))) == key) named = true;
      }
      if (named) continue;
      json::Value* period = json::find(member, "period");
      if (period == nullptr) {
        json::addMember(member, "period", json::Value(rapidjson::kObjectType), allocator);
        period = json::find(member, "period");
      }
      const std::string start(json::getString(*period, "start").value_or(""));
      const std::string end(json::getString(*period, "end").value_or(""));
      if (!start.empty() && start > as_of) continue;  // begins after the file's date
      if (!end.empty() && end <= as_of) continue;     // already ended
      period->RemoveMember("end");
      json::addString(*period, "end", as_of, allocator);
      provenance.insert(item.contribution->provenance);
    }
    list.PushBack(member, allocator);
  }
  out = std::move(list);
}

int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

Result<MergeRules> MergeRules::parse(std::string_view text) {
  json::Document doc;
  json::ParseError error;
  if (!json::parse(text, doc, error)) return Error{"merge rules: not JSON: " + error.describe()};
  const json::Value* resources = json::find(doc, "resources");
  if (!resources || !resources->IsObject()) return Error{"merge rules: \"resources\" must be an object"};
  MergeRules rules;
  for (const auto& type : resources->GetObject()) {
    const std::string name(json::stringView(type.name));
    const std::string where = "merge rules: resources." + name;
    if (!type.value.IsObject()) return Error{where + " must be an object"};
    TypeRules out;
    out.other = ElementRule{"first", {}, false};
    for (const auto& member : type.value.GetObject()) {
      const std::string_view key = json::stringView(member.name);
      if (key == "elements") {
        if (!member.value.IsObject()) return Error{where + ".elements must be an object"};
        for (const auto& element : member.value.GetObject()) {
          const std::string element_name(json::stringView(element.name));
          if (element_name == "$comment") continue;
          auto rule = elementRule(element.value, where + ".elements." + element_name);
          if (!rule.ok()) return rule.error();
          out.elements.emplace(element_name, std::move(*rule));
        }
      } else if (key == "otherElements") {
        auto rule = elementRule(member.value, where + ".otherElements");
        if (!rule.ok()) return rule.error();
        out.other = std::move(*rule);
      } else if (key == "survivor" || key == "conflictOn") {
        auto list = stringList(member.value, where + "." + std::string(key));
        if (!list.ok()) return list.error();
        (key == "survivor" ? out.survivor : out.conflict_on) = std::move(*list);
      } else if (key != "$comment") {
        return Error{where + ": unknown member '" + std::string(key) + "'"};
      }
    }
    rules.types_.emplace(name, std::move(out));
  }
  return rules;
}

Result<MergeRules> MergeRules::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read merge rules " + path};
  std::stringstream text;
  text << in.rdbuf();
  auto rules = parse(text.str());
  if (!rules.ok()) return Error{path + ": " + rules.message()};
  return rules;
}

std::string MergeRules::defaultPath() {
  const char* profiles = std::getenv("FHIR_GATEWAY_PROFILES");
  return std::string(profiles != nullptr && *profiles != '\0' ? profiles : GATEWAY_PROFILES_DIR) + "/alignment/merge-rules.json";
}

const TypeRules* MergeRules::of(std::string_view type) const {
  auto found = types_.find(type);
  return found == types_.end() ? nullptr : &found->second;
}

Result<Merged> merge(const MergeRules& rules, const std::vector<Contribution>& contributions, const Survivors& survivors) {
  if (contributions.empty()) return Error{"merge: no contributions"};
  const TypeRules* type_rules = rules.of(contributions.front().type);
  if (type_rules == nullptr) return Error{"merge: no rules for " + contributions.front().type};
  // A fixed order whatever the arrival order: the precedence of the default rule.
  std::vector<const Contribution*> sorted;
  for (const Contribution& c : contributions) sorted.push_back(&c);
  std::sort(sorted.begin(), sorted.end(), [&](const Contribution* a, const Contribution* b) { return before(type_rules->other, *a, *b); });
  std::vector<Parsed> parsed;
  parsed.reserve(sorted.size());
  for (const Contribution* c : sorted) {
    Parsed item{c, json::Document()};
    json::ParseError error;
    if (!json::parse(c->json, item.doc, error) || !item.doc.IsObject()) {
      return Error{"merge: contribution " + c->contributor + " of " + c->type + "/" + c->id + " is not a JSON object"};
    }
    parsed.push_back(std::move(item));
  }

  std::vector<std::string> names;
  for (const Parsed& item : parsed) {
    if (item.contribution->kind == "roster-full") continue;
    for (const auto& member : item.doc.GetObject()) {
      const std::string name(json::stringView(member.name));
      if (name == "resourceType" || name == "id") continue;
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }

  Merged merged;
  json::Document out;
  out.SetObject();
  auto& allocator = out.GetAllocator();
  json::addString(out, "resourceType", contributions.front().type, allocator);
  json::addString(out, "id", contributions.front().id, allocator);
  for (const std::string& name : names) {
    auto named = type_rules->elements.find(name);
    const ElementRule& rule = named == type_rules->elements.end() ? type_rules->other : named->second;
    json::Value value;
    if (rule.take == "members") {
      mergeMembers(rule, parsed, survivors, value, allocator, merged.provenance);
      if (value.Empty()) continue;
      merged.winners[name] = "members";
    } else if (rule.take == "union") {
      std::vector<std::pair<const Contribution*, const json::Value*>> items;
      for (const Parsed& item : parsed) {
        if (item.contribution->kind == "roster-full" || !allowed(rule, item.contribution->kind)) continue;
        const json::Value* element = json::find(item.doc, name);
        if (!element) continue;
        if (element->IsArray()) {
          for (const json::Value& entry : element->GetArray()) items.emplace_back(item.contribution, &entry);
        } else {
          items.emplace_back(item.contribution, element);
        }
      }
      std::stable_sort(items.begin(), items.end(), [&](const auto& a, const auto& b) {
        const size_t ka = rankOfKind(rule.from, a.first->kind), kb = rankOfKind(rule.from, b.first->kind);
        return ka < kb;
      });
      std::set<std::string> seen;
      value.SetArray();
      for (const auto& [contribution, entry] : items) {
        json::Value copy;
        copy.CopyFrom(*entry, allocator);
        if (rule.patient) pointAtSurvivors(copy, survivors, allocator);
        if (!seen.insert(json::serialize(copy)).second) continue;
        value.PushBack(copy, allocator);
        merged.provenance.insert(contribution->provenance);
      }
      if (value.Empty()) continue;
      merged.winners[name] = "union";
    } else {
      const Parsed* best = nullptr;
      for (const Parsed& item : parsed) {
        if (item.contribution->kind == "roster-full" || !allowed(rule, item.contribution->kind)) continue;
        if (!json::find(item.doc, name)) continue;
        if (best == nullptr || before(rule, *item.contribution, *best->contribution)) best = &item;
      }
      if (best == nullptr) continue;
      value.CopyFrom(*json::find(best->doc, name), allocator);
      if (rule.patient) pointAtSurvivors(value, survivors, allocator);
      if (name == "meta" && value.IsObject()) {
        value.RemoveMember("versionId");
        value.RemoveMember("lastUpdated");
      }
      merged.winners[name] = best->contribution->kind;
      merged.provenance.insert(best->contribution->provenance);
    }
    json::addMember(out, name, std::move(value), allocator);
  }
  merged.provenance.erase("");
  merged.json = json::serialize(out);
  return merged;
}

std::string chooseSurvivor(const MergeRules& rules, const std::map<std::string, std::set<std::string>>& kinds) {
  const TypeRules* patient = rules.of("Patient");
  if (patient != nullptr) {
    for (const std::string& kind : patient->survivor) {
      for (const auto& [id, of] : kinds) {  // ordered by id: the lowest id of that kind
        if (of.count(kind)) return id;
      }
    }
  }
  return kinds.empty() ? std::string() : kinds.begin()->first;
}

std::vector<std::string> conflictingElements(const MergeRules& rules, const json::Value& a, const json::Value& b) {
  std::vector<std::string> out;
  const TypeRules* patient = rules.of("Patient");
  if (patient == nullptr) return out;
  for (const std::string& element : patient->conflict_on) {
    const json::Value* x = json::find(a, element);
    const json::Value* y = json::find(b, element);
    if (x && y && json::serialize(*x) != json::serialize(*y)) out.push_back(element);
  }
  return out;
}

namespace {

// An HL7 v2 DTM with at least minutes and a UTC offset (`YYYYMMDDHHMM[SS[.S…]]±ZZZZ`, as MSH-7
// carries it) in the ISO form utcRank reads; anything else empty. Without an offset a DTM is the
// sender's local time, which the gateway cannot know: it stays as sent.
std::string isoFromDtm(std::string_view dtm) {
  size_t digits = 0;
  while (digits < dtm.size() && dtm[digits] >= '0' && dtm[digits] <= '9') ++digits;
  if (digits != 12 && digits != 14) return {};
  std::string_view rest = dtm.substr(digits);
  std::string fraction;
  if (digits == 14 && !rest.empty() && rest.front() == '.') {
    size_t end = 1;
    while (end < rest.size() && rest[end] >= '0' && rest[end] <= '9') ++end;
    if (end == 1) return {};
    fraction = std::string(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  if (rest.size() != 5 || (rest[0] != '+' && rest[0] != '-')) return {};
  for (size_t i = 1; i < 5; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return {};
  }
  std::string iso;
  iso.append(dtm.substr(0, 4)).append("-").append(dtm.substr(4, 2)).append("-").append(dtm.substr(6, 2));
  iso.append("T").append(dtm.substr(8, 2)).append(":").append(dtm.substr(10, 2)).append(":");
  iso.append(digits == 14 ? dtm.substr(12, 2) : std::string_view("00")).append(fraction);
  iso.append(rest.substr(0, 3)).append(":").append(rest.substr(3, 2));
  return iso;
}

}  // namespace

std::string utcRank(std::string_view text) {
  if (const std::string iso = isoFromDtm(text); !iso.empty()) return utcRank(iso);
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  int consumed = 0;
  const std::string copy(text);
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second, &consumed) != 6) {
    return copy;
  }
  std::string_view rest = std::string_view(copy).substr(static_cast<size_t>(consumed));
  std::string fraction;
  if (!rest.empty() && rest.front() == '.') {
    size_t end = 1;
    while (end < rest.size() && rest[end] >= '0' && rest[end] <= '9') ++end;
    fraction = std::string(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  int offset_minutes = 0;
  if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    const int hours = (rest[1] - '0') * 10 + (rest[2] - '0');
    const int minutes = (rest[4] - '0') * 10 + (rest[5] - '0');
    offset_minutes = (rest[0] == '-' ? -1 : 1) * (hours * 60 + minutes);
  } else if (rest != "Z") {
    return copy;
  }
  int64_t seconds = daysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 + hour * 3600 +
                    minute * 60 + second - static_cast<int64_t>(offset_minutes) * 60;
  const int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  int64_t in_day = seconds - days * 86400;
  // civil from days
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04lld-%02u-%02uT%02lld:%02lld:%02lld", static_cast<long long>(y), m, d,
                static_cast<long long>(in_day / 3600), static_cast<long long>(in_day / 60 % 60), static_cast<long long>(in_day % 60));
  return std::string(buffer) + fraction + "Z";
}

}  // namespace fhir::gateway::merge
