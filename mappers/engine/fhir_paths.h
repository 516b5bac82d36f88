// SPDX-License-Identifier: Apache-2.0
#pragma once

// Checks target paths of a mapping spec ("item[].productOrService.coding[0].code") against the
// R4 core StructureDefinitions, so an unknown element is a load-time error, not a silent typo.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"

namespace fhir::mappers::engine {

struct PathStep {
  std::string name;
  // `name` kept for the life of the process (set by the mapping engine when it compiles a spec):
  // bundles name their members with it without copying.
  std::string_view constant_name = {};
  enum class Index { kNone, kAt, kAppend } index = Index::kNone;
  size_t at = 0;  // for kAt
};

// "a[0].b[].c" -> steps. An Error for malformed text.
Result<std::vector<PathStep>> parseTargetPath(std::string_view text);

class FhirPaths {
 public:
  // `core_package_dir`: folder with StructureDefinition-<Type>.json files (R4 core package).
  explicit FhirPaths(std::string core_package_dir) : dir_(std::move(core_package_dir)) {}

  // Checks `steps` below an element of type `type` (a resource or data type name; for a
  // backbone element, `type` is its path, e.g. "ExplanationOfBenefit.item"). Returns the type
  // (or backbone path) the path ends on, or an Error naming the unknown element, a missing or
  // superfluous [index] (repeating elements need one, single ones must not have one), or a step
  // below a primitive.
  Result<std::string> check(const std::string& type, const std::vector<PathStep>& steps);

 private:
  struct Element {
    std::vector<std::string> types;
    bool repeating = false;
    std::string content_reference;  // "#Claim.item" style, without '#'
  };
  struct Definition {
    std::map<std::string, Element> elements;  // by full path
  };
  const Definition* definition(const std::string& type);

  std::string dir_;
  std::map<std::string, std::unique_ptr<Definition>> cache_;
};

}  // namespace fhir::mappers::engine
