// SPDX-License-Identifier: Apache-2.0
#include <iostream>
#include <string>

#include "gateway/cli/commands.h"

namespace {

void printUsage(std::ostream& out) {
  out << "usage: fhir-gateway COMMAND [ARGS...]\n\n"
         "HL7 FHIR R4 interoperability gateway.\n\ncommands:\n";
  for (const auto& command : fhir::gateway::cli::commands()) {
    out << "  " << command.name << std::string(10 - std::min<size_t>(9, std::string(command.name).size()), ' ')
        << command.summary << "\n";
  }
  out << "\nRun 'fhir-gateway COMMAND --help' for a command's options.\n";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fhir::gateway::cli;
  if (argc < 2) {
    printUsage(std::cerr);
    return 2;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    printUsage(std::cout);
    return 0;
  }
  Args args(argv + 2, argv + argc);
  Io io{std::cin, std::cout, std::cerr};
  for (const auto& command : commands()) {
    if (name == command.name) return command.run(args, io);
  }
  std::cerr << "fhir-gateway: unknown command '" << name << "' (see fhir-gateway --help)\n";
  return 2;
}
