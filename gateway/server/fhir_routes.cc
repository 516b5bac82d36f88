// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/fhir_routes.h"

#include <algorithm>
#include <cctype>

namespace fhir::gateway {

std::string_view interactionCode(FhirInteraction interaction) {
  switch (interaction) {
    case FhirInteraction::kRead: return "read";
    case FhirInteraction::kVread: return "vread";
    case FhirInteraction::kUpdate: return "update";
    case FhirInteraction::kPatch: return "patch";
    case FhirInteraction::kDelete: return "delete";
    case FhirInteraction::kHistoryInstance: return "history-instance";
    case FhirInteraction::kHistoryType: return "history-type";
    case FhirInteraction::kCreate: return "create";
    case FhirInteraction::kSearchType: return "search-type";
    case FhirInteraction::kHistorySystem: return "history-system";
    case FhirInteraction::kSearchSystem: return "search-system";
    case FhirInteraction::kTransaction: return "transaction";
    case FhirInteraction::kCapabilities: return "capabilities";
    case FhirInteraction::kOperation: return "operation";
  }
  return "operation";
}

bool isResourceTypeName(std::string_view text) {
  if (text.empty() || text.size() > 64 || text[0] < 'A' || text[0] > 'Z') return false;
  return std::all_of(text.begin(), text.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

bool isResourceIdText(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.'; });
}

Answer outcomeAnswer(int status, std::string code, std::string diagnostics) {
  IssueList issues;
  issues.add(Issue{Severity::kError, std::move(code), std::move(diagnostics), {}, {}});
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues)};
}

void readBodyUpTo(http::Request& request, size_t limit, std::string& body) {
  body.clear();
  char chunk[1 << 16];
  while (body.size() <= limit) {
    request.body.read(chunk, static_cast<std::streamsize>(std::min(sizeof chunk, limit + 1 - body.size())));
    if (request.body.gcount() <= 0) break;
    body.append(chunk, static_cast<size_t>(request.body.gcount()));
  }
}

std::optional<Answer> bodyProblem(const http::Request& request) {
  if (request.body_reader.complete()) return std::nullopt;
  const bool slow = request.body_reader.state() == http::BodyReader::State::kTimedOut;
  return outcomeAnswer(slow ? 408 : 400, slow ? "timeout" : "incomplete", request.body_reader.problem());
}

std::optional<Answer> readRequestBody(http::Request& request, size_t limit, std::string& body) {
  readBodyUpTo(request, limit, body);
  if (body.size() > limit) return outcomeAnswer(413, "too-long", "the body is larger than maxBodyBytes");
  return bodyProblem(request);
}

const FhirHandler* FhirTypeRoutes::handler(FhirInteraction interaction) const {
  for (const auto& [offered, handler] : interactions) {
    if (offered == interaction) return &handler;
  }
  return nullptr;
}

FhirTypeRoutes& FhirRoutes::type(const std::string& name) {
  for (FhirTypeRoutes& routes : types_) {
    if (routes.type == name) return routes;
  }
  types_.push_back(FhirTypeRoutes{});
  types_.back().type = name;
  return types_.back();
}

void FhirRoutes::add(const std::string& name, FhirInteraction interaction, FhirHandler handler) {
  FhirTypeRoutes& routes = type(name);
  for (auto& [offered, existing] : routes.interactions) {
    if (offered == interaction) {
      existing = std::move(handler);
      return;
    }
  }
  routes.interactions.emplace_back(interaction, std::move(handler));
}

void FhirRoutes::addSystem(FhirInteraction interaction, FhirHandler handler) {
  system_.emplace_back(interaction, std::move(handler));
}

void FhirRoutes::addOperation(const std::string& name, FhirOperation operation) {
  type(name).operations.push_back(std::move(operation));
}

void FhirRoutes::addSystemOperation(FhirOperation operation) { system_operations_.push_back(std::move(operation)); }

void FhirRoutes::addAnyTypeOperation(FhirOperation operation) { any_type_operations_.push_back(std::move(operation)); }

void FhirRoutes::addPath(const std::string& segment, FhirHandler handler) { paths_[segment] = std::move(handler); }

void FhirRoutes::addSearch(const std::vector<std::string>& types, const FhirHandler& handler,
                           const std::function<std::vector<SearchParamInfo>(const std::string&)>& params) {
  for (const std::string& name : types) {
    FhirTypeRoutes& routes = type(name);
    if (routes.handler(FhirInteraction::kSearchType) != nullptr) continue;
    routes.interactions.emplace_back(FhirInteraction::kSearchType, handler);
    if (params) routes.search_params = params(name);
  }
}

const FhirTypeRoutes* FhirRoutes::find(std::string_view name) const {
  for (const FhirTypeRoutes& routes : types_) {
    if (routes.type == name) return &routes;
  }
  return nullptr;
}

std::optional<std::vector<FhirRoutes::Candidate>> FhirRoutes::candidates(const std::vector<std::string>& segments,
                                                                         std::string& why) const {
  using I = FhirInteraction;
  std::vector<Candidate> out;
  auto system = [&](I interaction) -> const FhirHandler* {
    for (const auto& [offered, handler] : system_) {
      if (offered == interaction) return &handler;
    }
    return nullptr;
  };
  auto operations = [&](const std::vector<FhirOperation>& list, const std::string& name, FhirOperation::Level level) {
    for (const FhirOperation& operation : list) {
      if ("$" + operation.name != name || operation.level != level) continue;
      for (const std::string& method : operation.methods) out.push_back({method, I::kOperation, &operation.handler, name});
    }
  };
  const size_t size = segments.size();
  if (size == 1) {
    out.push_back({"POST", I::kTransaction, system(I::kTransaction), ""});
    out.push_back({"GET", I::kSearchSystem, system(I::kSearchSystem), ""});
    return out;
  }
  const std::string& first = segments[1];
  if (size == 2 && first == "metadata") {
    out.push_back({"GET", I::kCapabilities, system(I::kCapabilities), ""});
    return out;
  }
  if (size == 2 && first == "_history") {
    out.push_back({"GET", I::kHistorySystem, system(I::kHistorySystem), ""});
    return out;
  }
  if (size == 2 && first == "_search") {
    out.push_back({"GET", I::kSearchSystem, system(I::kSearchSystem), ""});
    out.push_back({"POST", I::kSearchSystem, system(I::kSearchSystem), ""});
    return out;
  }
  if (size == 2 && first.starts_with("$")) {
    operations(system_operations_, first, FhirOperation::Level::kSystem);
    if (out.empty()) why = "this gateway has no operation " + first;
    if (out.empty()) return std::nullopt;
    return out;
  }
  if (size == 2) {
    if (auto path = paths_.find(first); path != paths_.end()) {
      out.push_back({"GET", I::kSearchType, &path->second, ""});
      return out;
    }
  }
  if (!isResourceTypeName(first)) {
    why = "/" + segments[0] + "/" + first + " is not a route of this gateway";
    return std::nullopt;
  }
  const FhirTypeRoutes* routes = find(first);
  auto offered = [&](I interaction) -> const FhirHandler* {
    return routes != nullptr ? routes->handler(interaction) : nullptr;
  };
  // $validate and its kind are served on any type, also one that is not stored here.
  if (size == 3 && segments[2].starts_with("$")) {
    if (routes != nullptr) operations(routes->operations, segments[2], FhirOperation::Level::kType);
    operations(any_type_operations_, segments[2], FhirOperation::Level::kType);
    if (out.empty()) why = first + " has no operation " + segments[2] + " here";
    if (out.empty()) return std::nullopt;
    return out;
  }
  if (routes == nullptr) {
    why = "this gateway serves no " + first + " resources";
    return std::nullopt;
  }
  if (size == 2) {
    out.push_back({"GET", I::kSearchType, offered(I::kSearchType), ""});
    out.push_back({"POST", I::kCreate, offered(I::kCreate), ""});
    // Conditional update, delete and patch (by search criteria) are not offered.
    out.push_back({"PUT", I::kUpdate, nullptr, ""});
    out.push_back({"DELETE", I::kDelete, nullptr, ""});
    out.push_back({"PATCH", I::kPatch, nullptr, ""});
    return out;
  }
  if (size == 3 && segments[2] == "_history") {
    out.push_back({"GET", I::kHistoryType, offered(I::kHistoryType), ""});
    return out;
  }
  if (size == 3 && segments[2] == "_search") {
    out.push_back({"POST", I::kSearchType, offered(I::kSearchType), ""});
    return out;
  }
  if (!isResourceIdText(segments[2])) {
    why = "'" + segments[2] + "' is not a valid resource id";
    return std::nullopt;
  }
  if (size == 3) {
    out.push_back({"GET", I::kRead, offered(I::kRead), ""});
    out.push_back({"PUT", I::kUpdate, offered(I::kUpdate), ""});
    out.push_back({"DELETE", I::kDelete, offered(I::kDelete), ""});
    out.push_back({"PATCH", I::kPatch, offered(I::kPatch), ""});
    return out;
  }
  if (size == 4 && segments[3] == "_history") {
    out.push_back({"GET", I::kHistoryInstance, offered(I::kHistoryInstance), ""});
    return out;
  }
  if (size == 4 && segments[3].starts_with("$")) {
    operations(routes->operations, segments[3], FhirOperation::Level::kInstance);
    if (out.empty()) why = first + " has no instance operation " + segments[3] + " here";
    if (out.empty()) return std::nullopt;
    return out;
  }
  if (size == 5 && segments[3] == "_history") {
    out.push_back({"GET", I::kVread, offered(I::kVread), ""});
    return out;
  }
  why = "this gateway has no route " + [&] {
    std::string path;
    for (const std::string& segment : segments) path += "/" + segment;
    return path;
  }();
  return std::nullopt;
}

std::vector<std::string> FhirRoutes::allowed(const std::vector<std::string>& segments) const {
  std::string why;
  auto found = candidates(segments, why);
  std::vector<std::string> methods;
  if (!found) return methods;
  for (const Candidate& candidate : *found) {
    if (candidate.handler == nullptr) continue;
    if (std::find(methods.begin(), methods.end(), candidate.method) == methods.end()) methods.push_back(candidate.method);
  }
  return methods;
}

Answer FhirRoutes::dispatch(http::Request& request, Access& access, bool pretty,
                            std::vector<std::pair<std::string, std::string>> parameters) const {
  const std::vector<std::string>& segments = request.target.segments;
  std::string why;
  auto found = candidates(segments, why);
  if (!found) return outcomeAnswer(404, "not-found", why);
  std::string method = request.head.method == "HEAD" ? "GET" : request.head.method;
  std::vector<std::string> methods = allowed(segments);
  std::string allow;
  for (const std::string& offered : methods) {
    allow += (allow.empty() ? "" : ", ") + offered;
    if (offered == "GET") allow += ", HEAD";
  }
  allow += allow.empty() ? "OPTIONS" : ", OPTIONS";
  if (method == "OPTIONS") {
    access.headers.emplace_back("Allow", allow);
    return Answer{204, "application/fhir+json", ""};
  }
  const Candidate* not_offered = nullptr;
  for (const Candidate& candidate : *found) {
    if (candidate.method != method) continue;
    if (candidate.handler == nullptr) {
      not_offered = &candidate;
      continue;
    }
    FhirCall call{request, access, candidate.interaction, "", "", "", candidate.operation, std::move(parameters), pretty};
    if (segments.size() >= 2 && isResourceTypeName(segments[1])) call.type = segments[1];
    if (segments.size() >= 3 && !segments[2].starts_with("$") && !segments[2].starts_with("_")) call.id = segments[2];
    if (segments.size() == 5) call.version = segments[4];
    Answer answer = (*candidate.handler)(call);
    // A 202 (asynchronous request, R4 async.html and Bulk Data kick-off) names where to ask next
    // in Content-Location, not Location (query.md "HTTP semantics").
    if (answer.status == 202 && !answer.location.empty()) {
      access.headers.emplace_back("Content-Location", std::move(answer.location));
      answer.location.clear();
    }
    return answer;
  }
  access.headers.emplace_back("Allow", allow);
  std::string path;
  for (const std::string& segment : segments) path += "/" + segment;
  if (not_offered != nullptr) {
    const std::string subject = segments.size() >= 2 && isResourceTypeName(segments[1]) ? segments[1] : "this server";
    return outcomeAnswer(405, "not-supported", "this gateway does not offer the " +
                                                   std::string(interactionCode(not_offered->interaction)) +
                                                   " interaction on " + subject + " (" + request.head.method + " " +
                                                   path + "); Allow: " + allow);
  }
  return outcomeAnswer(405, "not-supported", request.head.method + " is not allowed on " + path + "; Allow: " + allow);
}

}  // namespace fhir::gateway
