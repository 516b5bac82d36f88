// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/measure_route.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "conformance/common/ids.h"
#include "conformance/common/time_util.h"
#include "conformance/json/json.h"
#include "gateway/measure/measure.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

constexpr const char* kChannel = "measure-report";

Answer refused(const auth::Refusal& refusal) { return outcomeAnswer(refusal.status, refusal.code, refusal.why); }

// The operation's parameters: the query's, then (POST) the body's `Parameters` (which win).
// Values: valueDate, valueDateTime (its date), valueString, valueCode, valueBoolean,
// valueReference.reference.
Result<std::map<std::string, std::string>> operationParameters(const FhirCall& call, const std::string& text) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : call.parameters) out[key] = value;
  if (call.request.head.method != "POST" || text.empty()) return out;
  json::Document body;
  json::ParseError error;
  if (!json::parse(text, body, error) || !body.IsObject()) {
    return Error{"the body is not JSON: " + error.message};
  }
  if (json::getString(body, "resourceType") != std::optional<std::string_view>("Parameters")) {
    return Error{"the body must be a Parameters resource"};
  }
  const json::Value* parameters = json::find(body, "parameter");
  if (parameters == nullptr) return out;
  if (!parameters->IsArray()) return Error{"Parameters.parameter must be an array"};
  for (rapidjson::SizeType i = 0; i < parameters->Size(); ++i) {
    const json::Value& parameter = (*parameters)[i];
    const std::string where = "Parameters.parameter[" + std::to_string(i) + "]";
    auto name = json::getString(parameter, "name");
    if (!name) return Error{where + ".name is required"};
    std::optional<std::string> value;
    for (const char* key : {"valueDate", "valueString", "valueCode", "valueUri", "valueCanonical"}) {
      if (auto text = json::getString(parameter, key)) value = std::string(*text);
    }
    if (auto text = json::getString(parameter, "valueDateTime")) value = std::string(text->substr(0, 10));
    if (const json::Value* flag = json::find(parameter, "valueBoolean"); flag && flag->IsBool()) {
      value = flag->GetBool() ? "true" : "false";
    }
    if (const json::Value* reference = json::find(parameter, "valueReference")) {
      if (auto text = json::getString(*reference, "reference")) value = std::string(*text);
    }
    if (!value) return Error{where + " (" + std::string(*name) + ") has no value of a type this operation reads"};
    out[std::string(*name)] = *value;
  }
  return out;
}

std::string get(const std::map<std::string, std::string>& parameters, const std::string& name) {
  auto found = parameters.find(name);
  return found == parameters.end() ? "" : found->second;
}

// Stores the report as a MeasureReport (its id derived from measure, subject, period and report
// type: evaluating the same again stores a new version of it); the stored JSON.
Result<std::pair<std::string, int64_t>> storeReport(Store& store, const measure::EvaluateParams& params, const std::string& measure_url,
                                                     const std::string& report, const std::string& request_body) {
  const std::string id = deriveId({"MeasureReport", measure_url, params.subject, params.period_start, params.period_end, params.report_type});
  json::Document doc;
  json::ParseError error;
  if (!json::parse(report, doc, error) || !doc.IsObject()) return Error{"the report is not JSON"};
  json::Value id_value = json::makeString(id, doc.GetAllocator());
  if (doc.HasMember("id")) doc.RemoveMember("id");
  // `id` first, as FHIR JSON writes it.
  json::Document ordered;
  ordered.SetObject();
  ordered.AddMember("resourceType", json::Value("MeasureReport", ordered.GetAllocator()), ordered.GetAllocator());
  ordered.AddMember("id", json::Value(id_value, ordered.GetAllocator()), ordered.GetAllocator());
  for (auto& member : doc.GetObject()) {
    if (std::string_view(member.name.GetString(), member.name.GetStringLength()) == "resourceType") continue;
    ordered.AddMember(json::Value(member.name, ordered.GetAllocator()), json::Value(member.value, ordered.GetAllocator()),
                      ordered.GetAllocator());
  }
  const std::string stored_json = json::serialize(ordered);
  IngestCommit commit;
  commit.channel = kChannel;
  commit.idempotency_key = std::string(kChannel) + '\x1f' + id + '\x1f' + sha256Hex(stored_json);
  commit.payload = request_body;
  commit.status = 201;
  commit.answer = stored_json;
  commit.resources.push_back(ResourceWrite{"MeasureReport", id, stored_json});
  auto outcome = store.commitIngest(std::move(commit));
  if (!outcome.ok()) return outcome.error();
  auto read = store.readResource("MeasureReport", id);
  if (!read.ok()) return read.error();
  if (!read->has_value()) return Error{"the stored MeasureReport/" + id + " cannot be read back"};
  return std::make_pair((*read)->json, (*read)->version);
}

}  // namespace

void registerMeasureRoutes(FhirRoutes& routes, ServerContext& context, const auth::AccessPolicy& policy) {
  routes.type("Measure").documentation =
      "The alignment guide's quality measures (data: FHIRPath criteria), with $evaluate-measure (POST with persist=true stores the MeasureReport)";
  ServerContext* server = &context;
  const auth::AccessPolicy* access_policy = &policy;
  routes.add("Measure", FhirInteraction::kRead, [](FhirCall& call) {
    call.access.audit.subtype = "read";
    const std::string path = std::string(GATEWAY_PROFILES_DIR) + "/alignment/package/Measure-" + call.id + ".json";
    auto library = measure::MeasureLibrary::bundled();
    if (!library.ok()) return outcomeAnswer(503, "transient", "measures are not loaded: " + library.message());
    if ((*library)->find(call.id) == nullptr) return outcomeAnswer(404, "not-found", "no Measure/" + call.id);
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return Answer{200, "application/fhir+json", text.str()};
  });
  routes.addOperation("Measure", {"evaluate-measure", "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
                                  FhirOperation::Level::kInstance, {"GET", "POST"}, [server, access_policy](FhirCall& call) {
    (void)access_policy;
    call.access.audit.subtype = "evaluate-measure";
    call.access.audit.query = call.request.target.query;
    auto library = measure::MeasureLibrary::bundled();
    if (!library.ok()) return outcomeAnswer(503, "transient", "measures are not loaded: " + library.message());
    const measure::CompiledMeasure* found = (*library)->find(call.id);
    if (found == nullptr) return outcomeAnswer(404, "not-found", "no Measure/" + call.id);
    std::string body;
    if (call.request.head.method == "POST") {
      if (auto problem = readRequestBody(call.request, static_cast<size_t>(server->config.max_body_bytes), body)) return *problem;
    }
    auto parameters = operationParameters(call, body);
    if (!parameters.ok()) return outcomeAnswer(400, "invalid", parameters.message());
    measure::EvaluateParams params;
    params.period_start = get(*parameters, "periodStart");
    params.period_end = get(*parameters, "periodEnd");
    params.subject = get(*parameters, "subject");
    params.report_type = get(*parameters, "reportType");
    if (params.report_type.empty()) params.report_type = params.subject.rfind("Patient/", 0) == 0 ? "subject" : "population";
    params.now = nowIso();
    if (params.period_start.empty() || params.period_end.empty()) {
      return outcomeAnswer(400, "required", "periodStart and periodEnd are required (YYYY-MM-DD)");
    }
    const std::string persist = get(*parameters, "persist");
    if (!persist.empty() && persist != "true" && persist != "false") {
      return outcomeAnswer(400, "invalid", "persist is true or false");
    }
    const bool store_report = persist == "true";
    if (store_report && call.request.head.method != "POST") {
      return outcomeAnswer(400, "invalid", "persist=true stores the report: POST the operation (GET has no side effects)");
    }
    const auth::Caller& caller = call.access.caller;
    measure::SearchAll search = measure::storeSearch(*server->store, server->base_url);
    if (!caller.admin()) {
      // A practice sees the report of its own practice only (access.md, `practice`).
      if (caller.client->kind != auth::ClientKind::kPractice) {
        return refused(auth::Refusal{403, "forbidden", "$evaluate-measure is for the admin and for practices"});
      }
      const std::string& subject = params.subject;
      if (subject.rfind("Group/", 0) != 0 && subject.rfind("Organization/", 0) != 0) {
        return refused(auth::Refusal{403, "forbidden", "a practice evaluates measures for its own attribution Group or Organization"});
      }
      auto npi = measure::subjectPracticeNpi(subject, search);
      if (!npi.ok() || *npi != caller.client->practice_npi) {
        // As if it did not exist: no existence leak.
        return outcomeAnswer(404, "not-found", "no " + subject);
      }
      if (store_report) return refused(auth::Refusal{403, "forbidden", "only the admin stores MeasureReports"});
    }
    auto report = measure::evaluate(*found, params, search);
    if (!report.ok()) {
      const std::string& message = report.message();
      if (message.rfind("not-found: ", 0) == 0) return outcomeAnswer(404, "not-found", message.substr(11));
      if (message.rfind("invalid: ", 0) == 0) return outcomeAnswer(400, "invalid", message.substr(9));
      if (message.rfind("exception: ", 0) == 0) return outcomeAnswer(500, "exception", message.substr(11));  // a measure's FHIRPath failed
      Answer failed = outcomeAnswer(503, "transient", "cannot evaluate now: " + message);
      failed.retry_after = 1;
      return failed;
    }
    if (!store_report) return Answer{200, "application/fhir+json", *report};
    auto stored = storeReport(*server->store, params, measure::measureUrl(*found), *report, body);
    if (!stored.ok()) {
      Answer failed = outcomeAnswer(503, "transient", "cannot store the MeasureReport now: " + stored.message());
      failed.retry_after = 1;
      return failed;
    }
    json::Document doc;
    json::ParseError error;
    std::string location;
    if (json::parse(stored->first, doc, error) && doc.IsObject()) {
      location = server->base_url + "/MeasureReport/" + std::string(json::getString(doc, "id").value_or("")) + "/_history/" +
                 std::to_string(stored->second);
    }
    return Answer{201, "application/fhir+json", std::string(stored->first), location};
  }});
}

}  // namespace fhir::gateway
