// SPDX-License-Identifier: Apache-2.0
#pragma once

// The spec compiler: spec JSON -> CompiledSpec (engine internals).

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "mappers/engine/fhir_paths.h"
#include "mappers/engine/spec_model.h"

namespace fhir::mappers::engine {

// ---------------------------------------------------------------------------------------------
// Compiling.

class Compiler {
 public:
  Compiler(CompiledSpec& spec, SpecLibrary::Shared& shared, FhirPaths& paths)
      : spec_(spec), shared_(shared), paths_(paths) {}

  Status compile();

 private:
  Error fail(const json::Value& at, const std::string& message) const {
    size_t line = spec_.document->lineOf(at);
    return Error{spec_.file + ":" + std::to_string(line ? line : 1) + ": " + message};
  }
  Result<SourcePath> sourcePath(const json::Value& at, std::string_view text, const std::string& scope);
  Result<ValueExpr> valueExpr(const json::Value& object, const std::string& scope, bool needs_value);
  Result<Condition> condition(const json::Value& object, const std::string& scope);
  Result<Rule> rule(const json::Value& object, const std::string& scope, const std::string& context);
  bool knownPattern(const std::string& pattern) const;
  // The scope of the items `path` reaches from `scope` ("a.*" when they are array elements).
  std::string itemScope(const SourcePath& path, const std::string& scope) const;
  // Additions for event specs (econsult): referenceTo/join/pick/coverage values, the event
  // transforms, resources per item, recordId parts, unknownMembers and provenanceAgent.
  Result<bool> eventValueExpr(const json::Value& object, const std::string& scope, ValueExpr& expr);
  Result<bool> eventTransform(const json::Value& at, const std::string& name, const json::Value& argument,
                              Transform& transform);
  Status eventResource(const json::Value& resource, const std::string& scope, ResourceProgram& program,
                       std::string& item_scope);
  Status eventTopLevel(const json::Value& root, const std::string& scope);
  // Care-management additions: alignment ValueSets and conditions over items or terminology.
  const ValueSetCodes* valueSet(std::string_view id) const;
  Result<Condition> itemCondition(const json::Value& object, const std::string& scope);

  CompiledSpec& spec_;
  SpecLibrary::Shared& shared_;
  FhirPaths& paths_;
  std::set<std::string> keys_;
  std::set<std::string> per_item_keys_;  // keys of resources made per item (forEach)
};

std::vector<std::string> splitPath(std::string_view text);
Status loadValueSets(const std::string& dir, const std::string& core_dir, SpecLibrary::Shared& shared);
Status loadConceptMaps(const std::string& dir, SpecLibrary::Shared& shared);

}  // namespace fhir::mappers::engine
