// SPDX-License-Identifier: Apache-2.0
#pragma once

// The fhir-gateway subcommands (contracts/cli.md). Each takes the arguments after its own name
// and returns the process exit code: 0 success, 1 the input has errors, 2 usage or environment
// error (with a one-line message on `err`).

#include <iosfwd>
#include <string>
#include <vector>

namespace fhir::gateway::cli {

using Args = std::vector<std::string>;

struct Io {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

struct Command {
  const char* name;
  int (*run)(const Args& args, Io& io);
  const char* summary;
};

// The registered subcommands, in the order --help lists them.
const std::vector<Command>& commands();

int runServe(const Args& args, Io& io);
int runFhirpath(const Args& args, Io& io);
int runValidate(const Args& args, Io& io);
int runMap(const Args& args, Io& io);
int runReplay(const Args& args, Io& io);
int runToken(const Args& args, Io& io);
int runStore(const Args& args, Io& io);
int runMeasure(const Args& args, Io& io);

}  // namespace fhir::gateway::cli
