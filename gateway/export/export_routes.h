// SPDX-License-Identifier: Apache-2.0
#pragma once

// The Bulk Data routes (contracts/query.md "Bulk Data export"):
//  * kick-off, in the /fhir route table so the CapabilityStatement lists them: `$export` at
//    system level, on Patient (type level) and on Group instances, and `$davinci-data-export` on
//    Group instances (the Da Vinci ATR alias: exportType hl7.fhir.us.davinci-atr); GET with the
//    query, POST with a `Parameters` body (and the query);
//  * outside /fhir: `GET|DELETE /export/status/{job}` (status, manifest, cancel) and
//    `GET /export/files/{job}/{file}` (NDJSON), only for the client that started the job.

#include <optional>

#include "gateway/export/export_service.h"
#include "gateway/server/fhir_routes.h"
#include "gateway/server/http_server.h"

namespace fhir::gateway {

// Registers the kick-off operations; `context` and `service` outlive the routes.
void registerExportRoutes(FhirRoutes& routes, ServerContext& context, exports::ExportService& service);

// The answer to a /export/... request; nullopt when `request` is not one. `access.headers`
// receives the headers of the answer (X-Progress, Allow).
std::optional<Answer> serveExportPath(ServerContext& context, exports::ExportService& service, http::Request& request,
                                      Access& access);

}  // namespace fhir::gateway
