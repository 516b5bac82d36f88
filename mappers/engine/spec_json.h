// SPDX-License-Identifier: Apache-2.0
#pragma once

// Reads a mapping spec file: JSON with // and /* */ comments, remembering the line of every
// object so that load-time errors can name the spec line.

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "conformance/common/result.h"
#include "conformance/json/json.h"

namespace fhir::mappers::engine {

class SpecDocument {
 public:
  // Parses `text`; an Error names the line and column of a syntax error.
  static Result<std::unique_ptr<SpecDocument>> parse(std::string_view text);

  const json::Value& root() const { return doc_; }
  // Line (1-based) where `object` starts; 0 when not an object of this document.
  size_t lineOf(const json::Value& object) const;

 private:
  json::Document doc_;
  std::unordered_map<const json::Value*, size_t> lines_;
};

}  // namespace fhir::mappers::engine
