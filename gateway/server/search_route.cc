// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/search_route.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>

#include "conformance/json/json.h"
#include "conformance/search/search.h"
#include "gateway/server/resource_subset.h"
#include "gateway/store/search_index.h"
#include "conformance/common/time_util.h"

namespace fhir::gateway {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

Answer issue(int status, std::string code, std::string diagnostics) {
  IssueList issues;
  issues.add(Issue{Severity::kError, std::move(code), std::move(diagnostics), {}, {}});
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues)};
}

bool isTypeName(const std::string& text) {
  if (text.empty() || text[0] < 'A' || text[0] > 'Z') return false;
  return std::all_of(text.begin(), text.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

std::string percentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == ',' || c == '|' || c == '$') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string jsonString(std::string_view text) {
  rapidjson::MemoryPoolAllocator<> allocator;
  return json::serialize(json::makeString(text, allocator));
}

std::string queryString(const Params& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += percentEncode(name) + "=" + percentEncode(value);
  }
  return out;
}

// `Prefer: handling=lenient` (RFC 7240; several preferences may share the header).
bool lenient(const http::Request& request) {
  const std::string* prefer = request.head.header("prefer");
  if (prefer == nullptr) return false;
  std::string text = *prefer;
  text.erase(std::remove(text.begin(), text.end(), ' '), text.end());
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text.find("handling=lenient") != std::string::npos;
}

// Reads a form body (POST _search) of at most `limit` bytes.
std::optional<Answer> readForm(http::Request& request, size_t limit, std::string& body) {
  char chunk[1 << 14];
  while (body.size() <= limit) {
    request.body.read(chunk, static_cast<std::streamsize>(sizeof chunk));
    if (request.body.gcount() <= 0) break;
    body.append(chunk, static_cast<size_t>(request.body.gcount()));
  }
  if (body.size() > limit) return issue(413, "too-long", "the _search body is larger than maxBodyBytes");
  if (!request.body_reader.complete()) {
    const bool slow = request.body_reader.state() == http::BodyReader::State::kTimedOut;
    return issue(slow ? 408 : 400, slow ? "timeout" : "incomplete", request.body_reader.problem());
  }
  return std::nullopt;
}

}  // namespace

std::optional<Answer> serveSearch(ServerContext& context, http::Request& request, const auth::Caller& caller,
                                  auth::AuditEntry& audit, const auth::AccessPolicy& policy) {
  const std::vector<std::string>& parts = request.target.segments;
  const std::string& method = request.head.method;
  const bool get = method == "GET" && parts.size() == 2;
  const bool post = method == "POST" && parts.size() == 3 && parts[2] == "_search";
  if (parts.empty() || parts[0] != "fhir" || parts.size() < 2 || !isTypeName(parts[1]) || (!get && !post)) {
    return std::nullopt;
  }
  const std::string& type = parts[1];
  audit.subtype = "search";
  audit.query = request.target.query;
  if (auto refused = policy.fhir(caller, auth::Interaction::kSearch, type)) {
    return issue(refused->status, refused->code, refused->why);
  }
  auto loaded = searchindex::registry();  // the store's definitions, read once per process
  if (!loaded.ok()) return issue(503, "transient", "search parameters are not loaded: " + loaded.message());
  const search::Registry& parameters = **loaded;
  if (!parameters.model()->isResourceType(type)) return issue(404, "not-found", "'" + type + "' is not a resource type");

  auto query_params = http::parseQuery(request.target.query);
  if (!query_params.ok()) return issue(400, "invalid", "query: " + query_params.message());
  Params all(query_params->begin(), query_params->end());
  if (post) {
    std::string body;
    if (auto refused = readForm(request, static_cast<size_t>(context.config.max_body_bytes), body)) return refused;
    auto form = http::parseQuery(body);
    if (!form.ok()) return issue(400, "invalid", "form body: " + form.message());
    all.insert(all.end(), form->begin(), form->end());
  }
  std::string cursor;
  Params criteria;
  for (auto& [name, value] : all) {
    if (name == "_cursor") {
      cursor = value;
      continue;
    }
    if (name == "_format") {
      if (value.find("xml") != std::string::npos) return issue(406, "not-supported", "only JSON is served (_format=" + value + ")");
      continue;
    }
    if (name == "_pretty") continue;
    criteria.emplace_back(name, value);
  }
  search::QueryOptions options;
  options.lenient = lenient(request);
  options.base_url = context.base_url;
  auto query = search::parseQuery(parameters, type, criteria, options);
  if (!query.ok()) {
    const std::string& message = query.message();
    const size_t colon = message.find(": ");
    const std::string code = colon == std::string::npos ? "invalid" : message.substr(0, colon);
    return issue(400, code, colon == std::string::npos ? message : message.substr(colon + 2));
  }
  if (!query->summary.empty() && !query->elements.empty()) {
    return issue(400, "invalid", "use _summary or _elements, not both");
  }
  subset::Shape shape;
  if (query->summary != "count") shape.summary = query->summary;
  shape.elements = query->elements;

  SearchRequest search_request;
  search_request.query = &*query;
  search_request.cursor = cursor;
  search_request.base_url = context.base_url;
  search_request.now_us = nowMs() * 1000;
  if (!caller.open() && caller.client->kind != auth::ClientKind::kAdmin) {
    search_request.visible = [&](std::string_view t, std::string_view id, const std::string& json) {
      return policy.visible(caller, t, id, json);
    };
  }
  auto page = context.store->search(search_request);
  if (!page.ok()) {
    if (page.message().rfind("invalid: ", 0) == 0) return issue(400, "invalid", page.message().substr(9));
    Answer failed = issue(503, "transient", "the store cannot search now: " + page.message());
    failed.retry_after = 1;
    return failed;
  }

  const std::string self_query = queryString(criteria);
  std::string self = context.base_url + "/" + type + (self_query.empty() && cursor.empty() ? "" : "?") + self_query;
  if (!cursor.empty()) self += (self_query.empty() ? "" : "&") + std::string("_cursor=") + percentEncode(cursor);
  std::string body = R"({"resourceType":"Bundle","type":"searchset")";
  body += R"(,"meta":{"lastUpdated":)" + jsonString(nowIso()) + "}";
  if (page->total >= 0) body += R"(,"total":)" + std::to_string(page->total);
  body += R"(,"link":[{"relation":"self","url":)" + jsonString(self) + "}";
  if (!page->next_cursor.empty()) {
    const std::string next = context.base_url + "/" + type + "?" + self_query + (self_query.empty() ? "" : "&") +
                             "_cursor=" + percentEncode(page->next_cursor);
    body += R"(,{"relation":"next","url":)" + jsonString(next) + "}";
  }
  body += "]";
  std::string entries;
  for (const SearchHit& hit : page->entries) {
    if (!entries.empty()) entries += ",";
    std::string resource = hit.json;
    if (!hit.include && shape.subsets()) {
      auto shaped = subset::apply(shape, resource);
      if (!shaped.ok()) return issue(503, "transient", "_summary/_elements: " + shaped.message());
      resource = std::move(*shaped);
    }
    entries += R"({"fullUrl":)" + jsonString(context.base_url + "/" + hit.type + "/" + hit.id) + R"(,"resource":)" +
               resource + R"(,"search":{"mode":")" + (hit.include ? "include" : "match") + "\"}}";
  }
  if (!query->ignored.empty()) {
    IssueList ignored;
    for (const std::string& name : query->ignored) {
      ignored.add(Issue{Severity::kWarning, "not-supported", "unknown search parameter '" + name + "' was ignored", {}, {}});
    }
    if (!entries.empty()) entries += ",";
    entries += R"({"resource":)" + toOperationOutcomeJson(ignored) + R"(,"search":{"mode":"outcome"}})";
  }
  if (!entries.empty()) body += R"(,"entry":[)" + entries + "]";
  body += "}";
  return Answer{200, "application/fhir+json", std::move(body)};
}

}  // namespace fhir::gateway
