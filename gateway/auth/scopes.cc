// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/scopes.h"

#include <algorithm>
#include <cctype>

namespace fhir::gateway::auth {
namespace {

constexpr std::string_view kPermissionLetters = "cruds";  // in Interaction order
constexpr unsigned kAll = 0x1f;
constexpr unsigned kReadSearch = (1u << static_cast<int>(Interaction::kRead)) | (1u << static_cast<int>(Interaction::kSearch));
constexpr std::string_view kIngestChannels[] = {"econsult", "care-management", "claims", "roster"};

bool isResourceTypeName(std::string_view text) {
  if (text == "*") return true;
  if (text.empty() || !std::isupper(static_cast<unsigned char>(text[0]))) return false;
  return std::all_of(text.begin(), text.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

// v2 "cruds" subsets in order, each letter once; v1 "read", "write", "*". 0 when neither.
unsigned permissionsOf(std::string_view text) {
  if (text == "read") return kReadSearch;
  if (text == "write") return kAll & ~kReadSearch;
  if (text == "*") return kAll;
  unsigned bits = 0;
  int last = -1;
  for (char c : text) {
    const size_t position = kPermissionLetters.find(c);
    if (position == std::string_view::npos || static_cast<int>(position) <= last) return 0;
    last = static_cast<int>(position);
    bits |= 1u << position;
  }
  return bits;
}

}  // namespace

const char* clientKindName(ClientKind kind) {
  switch (kind) {
    case ClientKind::kEhr: return "ehr";
    case ClientKind::kPayer: return "payer";
    case ClientKind::kHie: return "hie";
    case ClientKind::kPractice: return "practice";
    case ClientKind::kAdmin: return "admin";
  }
  return "admin";
}

ScopeSet ScopeSet::parse(std::string_view text, std::vector<std::string>* unknown) {
  ScopeSet set;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view scope = text.substr(start, end - start);
    start = end + 1;
    if (scope.empty()) continue;
    bool known = false;
    if (scope == "admin") {
      set.admin_ = known = true;
    } else if (scope.rfind("ingest/", 0) == 0) {
      const std::string_view channel = scope.substr(7);
      if (std::find(std::begin(kIngestChannels), std::end(kIngestChannels), channel) != std::end(kIngestChannels)) {
        known = true;
        if (std::find(set.ingest_.begin(), set.ingest_.end(), channel) == set.ingest_.end()) set.ingest_.emplace_back(channel);
      }
    } else if (scope.rfind("system/", 0) == 0) {
      const std::string_view rest = scope.substr(7);
      const size_t dot = rest.find('.');
      if (dot != std::string_view::npos && rest.find('?') == std::string_view::npos) {
        const std::string_view type = rest.substr(0, dot);
        const unsigned permissions = permissionsOf(rest.substr(dot + 1));
        if (isResourceTypeName(type) && permissions != 0) {
          known = true;
          set.resources_.push_back({std::string(type), permissions});
        }
      }
    }
    if (!known && unknown != nullptr) unknown->emplace_back(scope);
  }
  return set;
}

ScopeSet ScopeSet::allowedFor(ClientKind kind) {
  switch (kind) {
    case ClientKind::kEhr: return parse("system/*.rs ingest/econsult ingest/care-management");
    case ClientKind::kPayer: return parse("system/*.rs ingest/claims ingest/roster");
    case ClientKind::kHie: return parse("system/*.rs system/Subscription.cruds");
    case ClientKind::kPractice: return parse("system/*.rs");
    case ClientKind::kAdmin:
      return parse("system/*.cruds ingest/econsult ingest/care-management ingest/claims ingest/roster admin");
  }
  return ScopeSet();
}

bool ScopeSet::allows(Interaction interaction, std::string_view resource_type) const {
  const unsigned bit = 1u << static_cast<int>(interaction);
  return std::any_of(resources_.begin(), resources_.end(), [&](const ResourceScope& scope) {
    return (scope.permissions & bit) != 0 && (scope.type == "*" || scope.type == resource_type);
  });
}

bool ScopeSet::allowsIngest(std::string_view channel) const {
  return std::find(ingest_.begin(), ingest_.end(), channel) != ingest_.end();
}

ScopeSet ScopeSet::intersect(const ScopeSet& allowed) const {
  ScopeSet result;
  result.admin_ = admin_ && allowed.admin_;
  for (const std::string& channel : ingest_) {
    if (allowed.allowsIngest(channel)) result.ingest_.push_back(channel);
  }
  for (const ResourceScope& asked : resources_) {
    for (const ResourceScope& granted : allowed.resources_) {
      std::string type;
      if (asked.type == granted.type || granted.type == "*") type = asked.type;
      else if (asked.type == "*") type = granted.type;
      else continue;
      const unsigned permissions = asked.permissions & granted.permissions;
      if (permissions == 0) continue;
      auto same = std::find_if(result.resources_.begin(), result.resources_.end(),
                               [&](const ResourceScope& scope) { return scope.type == type; });
      if (same != result.resources_.end()) same->permissions |= permissions;
      else result.resources_.push_back({type, permissions});
    }
  }
  return result;
}

std::string ScopeSet::toString() const {
  std::vector<std::string> names;
  for (const ResourceScope& scope : resources_) {
    std::string letters;
    for (size_t index = 0; index < kPermissionLetters.size(); ++index) {
      if ((scope.permissions & (1u << index)) != 0) letters.push_back(kPermissionLetters[index]);
    }
    names.push_back("system/" + scope.type + "." + letters);
  }
  std::sort(names.begin(), names.end());
  for (std::string_view channel : kIngestChannels) {
    if (allowsIngest(channel)) names.push_back("ingest/" + std::string(channel));
  }
  if (admin_) names.emplace_back("admin");
  std::string out;
  for (const std::string& name : names) {
    if (!out.empty()) out.push_back(' ');
    out += name;
  }
  return out;
}

std::vector<std::string> supportedScopes() {
  return {"system/*.rs", "system/*.read", "system/Claim.rs", "system/Subscription.cruds", "system/*.cruds",
          "ingest/econsult", "ingest/care-management", "ingest/claims", "ingest/roster", "admin"};
}

}  // namespace fhir::gateway::auth
