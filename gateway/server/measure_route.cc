// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/measure_route.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/measure/measure.h"
#include "conformance/common/time_util.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

Answer refused(const auth::Refusal& refusal) { return outcomeAnswer(refusal.status, refusal.code, refusal.why); }

std::string parameter(const FhirCall& call, const std::string& name) {
  for (const auto& [key, value] : call.parameters) {
    if (key == name) return value;
  }
  return "";
}

}  // namespace

void registerMeasureRoutes(FhirRoutes& routes, ServerContext& context, const auth::AccessPolicy& policy) {
  routes.type("Measure").documentation = "The alignment guide's quality measures (data: FHIRPath criteria), with $evaluate-measure";
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
                                  FhirOperation::Level::kInstance, {"GET"}, [server, access_policy](FhirCall& call) {
    call.access.audit.subtype = "evaluate-measure";
    call.access.audit.query = call.request.target.query;
    auto library = measure::MeasureLibrary::bundled();
    if (!library.ok()) return outcomeAnswer(503, "transient", "measures are not loaded: " + library.message());
    const measure::CompiledMeasure* found = (*library)->find(call.id);
    if (found == nullptr) return outcomeAnswer(404, "not-found", "no Measure/" + call.id);
    measure::EvaluateParams params;
    params.period_start = parameter(call, "periodStart");
    params.period_end = parameter(call, "periodEnd");
    params.subject = parameter(call, "subject");
    params.report_type = parameter(call, "reportType");
    if (params.report_type.empty()) params.report_type = params.subject.rfind("Patient/", 0) == 0 ? "subject" : "population";
    params.now = nowIso();
    if (params.period_start.empty() || params.period_end.empty()) {
      return outcomeAnswer(400, "required", "periodStart and periodEnd are required (YYYY-MM-DD)");
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
    return Answer{200, "application/fhir+json", *report};
  }});
}

}  // namespace fhir::gateway
