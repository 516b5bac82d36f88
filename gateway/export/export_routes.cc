// SPDX-License-Identifier: Apache-2.0
#include "gateway/export/export_routes.h"

#include <algorithm>
#include <cctype>

#include "conformance/json/json.h"

namespace fhir::gateway {
namespace {

constexpr const char* kExportDefinition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export";
constexpr const char* kPatientExportDefinition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export";
constexpr const char* kGroupExportDefinition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export";
constexpr const char* kAtrExportDefinition = "http://hl7.org/fhir/us/davinci-atr/OperationDefinition/davinci-data-export";

std::string publicBaseOf(const ServerContext& context) {
  const std::string& base = context.base_url;
  constexpr std::string_view kFhir = "/fhir";
  if (base.size() >= kFhir.size() && base.compare(base.size() - kFhir.size(), kFhir.size(), kFhir) == 0) {
    return base.substr(0, base.size() - kFhir.size());
  }
  return base;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

void splitTypes(const std::string& value, std::vector<std::string>& out) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string::npos) comma = value.size();
    std::string type = value.substr(start, comma - start);
    type.erase(0, type.find_first_not_of(' '));
    type.erase(type.find_last_not_of(' ') + 1);
    if (!type.empty()) out.push_back(type);
    start = comma + 1;
  }
}

// A POST kick-off's `Parameters` body as (name, value) pairs: each parameter's value[x] that is
// text (valueString, valueCode, valueInstant, valueDateTime, valueUri, ...).
std::optional<Answer> readParameters(const std::string& body, std::vector<std::pair<std::string, std::string>>& out) {
  auto doc = json::parse(body);
  if (!doc.ok() || !doc->IsObject() || json::getString(*doc, "resourceType").value_or("") != "Parameters") {
    return outcomeAnswer(400, "invalid", "a POST kick-off body must be a FHIR Parameters resource");
  }
  const json::Value* parameters = json::find(*doc, "parameter");
  if (parameters == nullptr) return std::nullopt;
  if (!parameters->IsArray()) return outcomeAnswer(400, "invalid", "Parameters.parameter must be an array");
  for (rapidjson::SizeType index = 0; index < parameters->Size(); ++index) {
    const json::Value& parameter = (*parameters)[index];
    const std::string where = "Parameters.parameter[" + std::to_string(index) + "]";
    if (!parameter.IsObject()) return outcomeAnswer(400, "invalid", where + " is not an object");
    const std::string name(json::getString(parameter, "name").value_or(""));
    if (name.empty()) return outcomeAnswer(400, "invalid", where + " has no name");
    std::optional<std::string> value;
    for (const auto& member : parameter.GetObject()) {
      const std::string_view key = json::stringView(member.name);
      if (key.rfind("value", 0) == 0 && json::isString(member.value)) value = std::string(json::stringView(member.value));
      if (key == "valueReference" && member.value.IsObject()) value = std::string(json::getString(member.value, "reference").value_or(""));
    }
    if (!value) return outcomeAnswer(400, "invalid", where + " ('" + name + "') has no text value[x]");
    out.emplace_back(name, *value);
  }
  return std::nullopt;
}

Answer kickOff(FhirCall& call, ServerContext& context, exports::ExportService& service, const std::string& level,
               bool atr_alias) {
  http::Request& request = call.request;
  call.access.audit.subtype = "export";
  call.access.audit.action = 'E';
  call.access.audit.query = request.target.query;
  exports::KickOff kick;
  kick.level = level;
  kick.group_id = call.id;
  const std::string* prefer = request.head.header("prefer");
  kick.respond_async = prefer != nullptr && lower(*prefer).find("respond-async") != std::string::npos;
  std::vector<std::pair<std::string, std::string>> parameters = call.parameters;
  if (request.head.method == "POST") {
    std::string body;
    if (auto refused = readRequestBody(request, static_cast<size_t>(context.config.max_body_bytes), body)) return *refused;
    if (!body.empty()) {
      if (auto refused = readParameters(body, parameters)) return *refused;
    }
  }
  for (const auto& [name, value] : parameters) {
    if (name == "_outputFormat") kick.output_formats.push_back(value);
    else if (name == "_type") splitTypes(value, kick.types);
    else if (name == "_since") kick.since.push_back(value);
    else if (name == "_typeFilter") kick.type_filters.push_back(value);
    else if (name == "exportType") kick.export_types.push_back(value);
    else kick.unknown.push_back(name);
  }
  if (atr_alias && kick.export_types.empty()) kick.export_types.emplace_back("hl7.fhir.us.davinci-atr");
  const std::string public_base = publicBaseOf(context);
  kick.request = public_base + request.target.path + (request.target.query.empty() ? "" : "?" + request.target.query);
  exports::ExportAnswer answer = service.kickOff(kick, call.access.caller, public_base);
  for (auto& header : answer.headers) call.access.headers.push_back(std::move(header));
  return std::move(answer.answer);
}

}  // namespace

void registerExportRoutes(FhirRoutes& routes, ServerContext& context, exports::ExportService& service) {
  ServerContext* ctx = &context;
  exports::ExportService* exports = &service;
  auto handler = [ctx, exports](std::string level, bool alias) {
    return [ctx, exports, level, alias](FhirCall& call) { return kickOff(call, *ctx, *exports, level, alias); };
  };
  routes.addSystemOperation({"export", kExportDefinition, FhirOperation::Level::kSystem, {"GET", "POST"}, handler("system", false)});
  routes.addOperation("Patient", {"export", kPatientExportDefinition, FhirOperation::Level::kType, {"GET", "POST"},
                                  handler("patient", false)});
  routes.addOperation("Group", {"export", kGroupExportDefinition, FhirOperation::Level::kInstance, {"GET", "POST"},
                                handler("group", false)});
  routes.addOperation("Group", {"davinci-data-export", kAtrExportDefinition, FhirOperation::Level::kInstance,
                                {"GET", "POST"}, handler("group", true)});
}

std::optional<Answer> serveExportPath(ServerContext& context, exports::ExportService& service, http::Request& request,
                                      Access& access) {
  const std::vector<std::string>& parts = request.target.segments;
  if (parts.empty() || parts[0] != "export") return std::nullopt;
  const std::string method = request.head.method == "HEAD" ? "GET" : request.head.method;
  access.audit.subtype = "export";
  access.audit.action = method == "DELETE" ? 'D' : 'R';
  exports::ExportAnswer answer;
  if (parts.size() == 3 && parts[1] == "status") {
    if (method == "GET") {
      answer = service.status(parts[2], access.caller, publicBaseOf(context));
    } else if (method == "DELETE") {
      answer = service.cancel(parts[2], access.caller);
    } else {
      access.headers.emplace_back("Allow", "GET, HEAD, DELETE");
      return outcomeAnswer(405, "not-supported", method + " is not allowed on an export status URL; Allow: GET, HEAD, DELETE");
    }
  } else if (parts.size() == 4 && parts[1] == "files") {
    if (method != "GET") {
      access.headers.emplace_back("Allow", "GET, HEAD");
      return outcomeAnswer(405, "not-supported", method + " is not allowed on an export file; Allow: GET, HEAD");
    }
    answer = service.file(parts[2], parts[3], access.caller);
  } else {
    return outcomeAnswer(404, "not-found", request.target.path + " is not a route of this gateway");
  }
  for (auto& header : answer.headers) access.headers.push_back(std::move(header));
  return std::move(answer.answer);
}

}  // namespace fhir::gateway
