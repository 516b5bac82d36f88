// SPDX-License-Identifier: Apache-2.0
#pragma once

// `GET /fhir/Measure/{id}/$evaluate-measure?periodStart=&periodEnd=&subject=&reportType=` and its
// `POST` with a `Parameters` body, whose `persist=true` stores the report as a MeasureReport (issue
// 20, R4 Measure-evaluate-measure) over the measures of the alignment package
// (gateway/measure/measure.h), and `GET /fhir/Measure/{id}` for the Measure itself. Open to the
// admin, and to a `practice` client for a subject of its own practice (its attribution Group or
// its Organization); nothing else.

#include "gateway/auth/policy.h"
#include "gateway/server/fhir_routes.h"
#include "gateway/server/http_server.h"

namespace fhir::gateway {

void registerMeasureRoutes(FhirRoutes& routes, ServerContext& context, const auth::AccessPolicy& policy);

}  // namespace fhir::gateway
