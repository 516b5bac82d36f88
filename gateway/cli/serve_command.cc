// SPDX-License-Identifier: Apache-2.0
#include <ostream>

#include "gateway/cli/commands.h"

namespace fhir::gateway::cli {

int runServe(const Args&, Io& io) {
  io.err << "fhir-gateway serve: starting\n";
  return 2;
}

}  // namespace fhir::gateway::cli
