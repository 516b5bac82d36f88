// SPDX-License-Identifier: Apache-2.0
#include "gateway/cli/commands.h"

namespace fhir::gateway::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"serve", &runServe, "run the gateway (HTTP ingest, FHIR API, delivery)"},
      {"fhirpath", &runFhirpath, "evaluate a FHIRPath expression against a FHIR JSON resource"},
      {"validate", &runValidate, "validate FHIR JSON resources against R4 and profiles"},
      {"map", &runMap, "map a payer or EHR source file to FHIR Bundles (NDJSON)"},
      {"replay", &runReplay, "run quarantined payloads or dead letters again"},
      {"token", &runToken, "get an access token (SMART Backend Services) from a gateway"},
      {"store", &runStore, "copy a SQLite store into PostgreSQL (store copy)"},
      {"measure", &runMeasure, "evaluate a quality measure over the store (as $evaluate-measure)"},
  };
  return kCommands;
}

}  // namespace fhir::gateway::cli
